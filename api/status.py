"""Reading a run's status with the `status` query, failures mapped to HTTP; status reads that
ask the worker again only when the run's history moved."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionResponse
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.common import RawValue
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, from_rpc, no_worker, timed_out
from api.scope import describe_run
from workflows.contract import STATUS_QUERY
from workflows.models import RunStatus
from workflows.pipeline import PipelineWorkflow

# A status query waits for a worker to answer; a run whose workers are all down must not hold
# an API request (and its connection) open.
QUERY_TIMEOUT = timedelta(seconds=5)
# How long a shared read may be out before the readers who arrived after it get their own.
HEDGE = timedelta(milliseconds=200)
# Bounds on the statuses one API process remembers (least recently read dropped first): runs,
# bytes of status JSON in all, and the largest status kept (a larger one is always queried).
CACHE_MAX_RUNS = 10_000
CACHE_MAX_BYTES = 64 * 2**20
CACHE_MAX_BODY_BYTES = 1 * 2**20


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


@dataclass(frozen=True)
class Mark:
    """Where a run's history stood: a status read at a mark holds as long as the mark does."""

    run_id: str
    length: int

    @classmethod
    def of(cls, desc: DescribeWorkflowExecutionResponse) -> Mark | None:
        """The run's mark, or None while a workflow task is scheduled or running: events may
        then wait in the server's buffer (a signal received meanwhile) without being counted in
        the history yet, so only a query (which waits for that task) tells the status."""
        if desc.HasField("pending_workflow_task"):
            return None
        info = desc.workflow_execution_info
        return cls(info.execution.run_id, info.history_length)


@dataclass(frozen=True)
class _Seen:
    mark: Mark
    body: bytes


@dataclass
class StatusCache:
    """The last status read of each run with the history mark it was read at, bounded in runs
    and bytes; the least recently read run goes first."""

    max_runs: int = CACHE_MAX_RUNS
    max_bytes: int = CACHE_MAX_BYTES
    _seen: OrderedDict[str, _Seen] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def get(self, workflow_id: str, mark: Mark) -> bytes | None:
        seen = self._seen.get(workflow_id)
        if seen is None or seen.mark != mark:
            return None
        self._seen.move_to_end(workflow_id)
        return seen.body

    def put(self, workflow_id: str, mark: Mark, body: bytes) -> None:
        seen = self._seen.get(workflow_id)
        if seen is not None and seen.mark.run_id == mark.run_id and seen.mark.length > mark.length:
            return  # a round that came back late: the status kept is the newer one
        self.drop(workflow_id)
        if len(body) > min(CACHE_MAX_BODY_BYTES, self.max_bytes):
            return
        self._seen[workflow_id] = _Seen(mark, body)
        self._bytes += len(body)
        while len(self._seen) > self.max_runs or self._bytes > self.max_bytes:
            _, oldest = self._seen.popitem(last=False)
            self._bytes -= len(oldest.body)

    def drop(self, workflow_id: str) -> None:
        seen = self._seen.pop(workflow_id, None)
        if seen is not None:
            self._bytes -= len(seen.body)

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def bytes(self) -> int:
        return self._bytes


@dataclass
class _Reads:
    """Reads of one run while a task serves them: the round not yet sent, joined by newcomers."""

    waiting: asyncio.Future[bytes] | None = None


@dataclass
class StatusReads:
    """Status reads that never serve a status older than their request, and cost the worker
    nothing while the run stands still.

    A read asks the server where the run's history stands (a describe, which no worker answers)
    and gets the status remembered at that mark; only when the history moved (or a workflow
    task is out) does it send the `status` query, and remember its answer at the mark. A
    decision that returned before the read began is in the history by then, so the mark has
    moved past any status that lacks it.

    Concurrent reads of one run share each round (a describe, and the query if one is needed),
    joining only a round not sent yet: while one is out, the reads that arrive meanwhile share
    the next one (or their own, if the one out hangs past HEDGE)."""

    cache: StatusCache = field(default_factory=StatusCache)
    _runs: dict[str, _Reads] = field(default_factory=dict)
    # The event loop keeps only weak references to tasks.
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def json(self, client: Client, workflow_id: str) -> bytes:
        reads = self._runs.get(workflow_id)
        if reads is None:  # no round out for this run: start the task that sends them
            reads = self._runs[workflow_id] = _Reads()
            self._spawn(self._serve(client, workflow_id, reads))
        if reads.waiting is None:
            reads.waiting = asyncio.get_running_loop().create_future()
            # Nobody may be left to look at an error if every reader has gone away.
            reads.waiting.add_done_callback(_retrieve)
        # One reader going away (a closed connection) must not cancel the round the others share.
        return await asyncio.shield(reads.waiting)

    async def read(self, client: Client, workflow_id: str) -> bytes:
        """One round: the describe, then the status remembered at its mark or a fresh query."""
        try:
            mark = Mark.of(await describe_run(client, workflow_id))
        except ApiError as err:
            if err.status == 404:
                self.cache.drop(workflow_id)
            raise
        if mark is not None:
            body = self.cache.get(workflow_id, mark)
            if body is not None:
                return body
        # The query goes to whichever run is current by then; if that is not the run described,
        # the next describe names another run and the mark kept here never matches again.
        body = await query_status_json(client, workflow_id)
        if mark is not None:
            self.cache.put(workflow_id, mark, body)
        return body

    async def _serve(self, client: Client, workflow_id: str, reads: _Reads) -> None:
        try:
            while reads.waiting is not None:
                # Whoever arrives from here on waits for the next round: this one may be on its way.
                round_, reads.waiting = reads.waiting, None
                sent = self._spawn(self._answer(client, workflow_id, round_))
                # The next round goes out when this one returns, or once this one has been out for
                # HEDGE: a round that hangs (a worker busy or gone) holds back only its own readers.
                await asyncio.wait({sent}, timeout=HEDGE.total_seconds())
        finally:
            if reads.waiting is not None and not reads.waiting.done():
                reads.waiting.cancel()  # only when this task is cancelled, at shutdown
            del self._runs[workflow_id]

    async def _answer(
        self, client: Client, workflow_id: str, round_: asyncio.Future[bytes]
    ) -> None:
        try:
            result = await self.read(client, workflow_id)
        except Exception as err:  # every reader of this round gets the same error
            round_.set_exception(err)
        except BaseException:
            round_.cancel()
            raise
        else:
            round_.set_result(result)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _retrieve(future: asyncio.Future[bytes]) -> None:
    if not future.cancelled():
        future.exception()
