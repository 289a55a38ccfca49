"""Reading a run's status with the `status` query, failures mapped to HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.common import RawValue
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, from_rpc, no_worker, timed_out
from workflows.contract import STATUS_QUERY
from workflows.models import RunStatus
from workflows.pipeline import PipelineWorkflow

# A status query waits for a worker to answer; a run whose workers are all down must not hold
# an API request (and its connection) open.
QUERY_TIMEOUT = timedelta(seconds=5)
# How long a shared status query may be out before the readers who arrived after it get their own.
HEDGE = timedelta(milliseconds=200)


async def query_status(client: Client, workflow_id: str) -> RunStatus:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.query(PipelineWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        raise query_error(err, workflow_id) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise _not_a_run(workflow_id, err) from None


async def query_status_json(client: Client, workflow_id: str) -> bytes:
    """The status as the worker serialized it: the API neither parses nor re-encodes it, which
    is most of what a status request would otherwise cost here."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        raw = await handle.query(STATUS_QUERY, result_type=RawValue, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        raise query_error(err, workflow_id) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise _not_a_run(workflow_id, err) from None
    if raw.payload.metadata.get("encoding") != b"json/plain":
        return (await query_status(client, workflow_id)).model_dump_json().encode()
    return bytes(raw.payload.data)


def query_error(err: RPCError, workflow_id: str) -> ApiError:
    no_poller = err.status == RPCStatusCode.FAILED_PRECONDITION and "poller" in err.message
    if timed_out(err) or no_poller:
        return no_worker(workflow_id, QUERY_TIMEOUT)
    return from_rpc(err, not_found=f"no run {workflow_id!r}")


def _not_a_run(workflow_id: str, err: Exception) -> ApiError:
    # Another workflow type under this id, or a run that cannot answer: not a Stepgate run.
    return ApiError(409, "status_unavailable", f"run {workflow_id!r} cannot report status: {err}")


@dataclass
class _Reads:
    """Reads of one run while a task serves them: the round not yet sent, joined by newcomers."""

    waiting: asyncio.Future[bytes] | None = None


@dataclass
class StatusReads:
    """Concurrent status reads of the same run share one query, without serving anyone a status
    older than their request: a read joins only a query that has not been sent yet. While one
    query is out, the reads that arrive meanwhile wait for it to return and then share the next
    one (or their own, if the one out hangs past HEDGE). Many viewers of one run thus cost about
    one query per round trip instead of one each, and a read still sees every decision accepted
    before it began."""

    _runs: dict[str, _Reads] = field(default_factory=dict)
    # The event loop keeps only weak references to tasks.
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def json(self, client: Client, workflow_id: str) -> bytes:
        reads = self._runs.get(workflow_id)
        if reads is None:  # no query out for this run: start the task that sends them
            reads = self._runs[workflow_id] = _Reads()
            self._spawn(self._serve(client, workflow_id, reads))
        if reads.waiting is None:
            reads.waiting = asyncio.get_running_loop().create_future()
            # Nobody may be left to look at an error if every reader has gone away.
            reads.waiting.add_done_callback(_retrieve)
        # One reader going away (a closed connection) must not cancel the query the others share.
        return await asyncio.shield(reads.waiting)

    async def _serve(self, client: Client, workflow_id: str, reads: _Reads) -> None:
        try:
            while reads.waiting is not None:
                # Whoever arrives from here on waits for the next query: this one may be on its way.
                round_, reads.waiting = reads.waiting, None
                sent = self._spawn(_answer(client, workflow_id, round_))
                # The next round goes out when this one returns, or once this one has been out for
                # HEDGE: a query that hangs (a worker busy or gone) holds back only its own readers.
                await asyncio.wait({sent}, timeout=HEDGE.total_seconds())
        finally:
            if reads.waiting is not None and not reads.waiting.done():
                reads.waiting.cancel()  # only when this task is cancelled, at shutdown
            del self._runs[workflow_id]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _answer(client: Client, workflow_id: str, round_: asyncio.Future[bytes]) -> None:
    try:
        result = await query_status_json(client, workflow_id)
    except Exception as err:  # every reader of this round gets the same error
        round_.set_exception(err)
    except BaseException:
        round_.cancel()
        raise
    else:
        round_.set_result(result)


def _retrieve(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()
