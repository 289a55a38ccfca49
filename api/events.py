"""Server-Sent Events for one run: a `status` event per revision until the run closes.

One watcher per watched run serves all its subscribers, and it does not poll the `status` query:
it long-polls the run's history (GetWorkflowExecutionHistory with wait_new_event, from the end of
the history on) and queries status only when the history moved. An idle run's streams cost the
worker nothing, and the server one parked request per run."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.errors import ApiError, body, from_rpc, timed_out
from api.status import query_status
from workflows.contract import CLOSED_RUN_STATES
from workflows.models import RunStatus

log = structlog.get_logger("stepgate.api")

# The least time between two status queries of one watched run: a busy run whose history moves
# all the time costs its worker at most this rate of queries, as the old poller did.
POLL_S = 0.2
# The longest one history long poll may stay out before it is sent again; the server answers
# sooner (after ~20 s) with an empty page when nothing happened.
HISTORY_WAIT = timedelta(seconds=30)
KEEPALIVE_S = 15.0
# Tells EventSource how long to wait before it reconnects (with Last-Event-ID) after a drop.
RECONNECT_MS = 1_000


def status_event(status: RunStatus, retry_ms: int | None = None) -> str:
    """One `status` event; `retry_ms` tells EventSource how long to wait before reconnecting."""
    retry = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"id: {status.revision}\nevent: status\n{retry}data: {status.model_dump_json()}\n\n"


def is_closed(status: RunStatus) -> bool:
    # RunState is a StrEnum, so the plain string from the query compares equal.
    return status.state in CLOSED_RUN_STATES


class Watch:
    """The latest status of one run, refreshed by a single watcher for all its subscribers."""

    def __init__(self, first: RunStatus) -> None:
        self.latest = first
        self.error: ApiError | None = None
        # The run's history ended without a closed status (terminated, timed out): no revision
        # will follow, so streams end instead of waiting forever.
        self.ended = False
        self.subscribers = 0
        self.queries = 0
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def publish(
        self, status: RunStatus | None, error: ApiError | None = None, ended: bool = False
    ) -> None:
        async with self.changed:
            if status is not None:
                self.latest = status
            self.error = error
            self.ended = ended
            self.changed.notify_all()

    def moved_past(self, revision: int) -> bool:
        return self.finished or self.latest.revision > revision

    @property
    def finished(self) -> bool:
        """Nothing more will come: an error, or the history ended without a closed status."""
        return self.error is not None or self.ended

    @property
    def done(self) -> bool:
        return self.finished or is_closed(self.latest)


class StatusHub:
    """One history watcher per watched run, shared by every /events subscriber of that run: a
    hundred people watching one run cost what one does."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self._watches: dict[str, Watch] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self, client: Client, first: RunStatus) -> AsyncIterator[Watch]:
        watch = self._watches.get(first.workflow_id)
        if watch is None or watch.done:
            watch = self._watches[first.workflow_id] = Watch(first)
            watch.task = asyncio.create_task(self._watch(client, watch))
        elif first.revision > watch.latest.revision:
            await watch.publish(first)
        watch.subscribers += 1
        try:
            yield watch
        finally:
            watch.subscribers -= 1
            if watch.subscribers == 0 and self._watches.get(first.workflow_id) is watch:
                del self._watches[first.workflow_id]
                if watch.task is not None:
                    watch.task.cancel()

    async def _watch(self, client: Client, watch: Watch) -> None:
        try:
            while not watch.done:
                if not await self._follow_run(client, watch):
                    await watch.publish(None, ended=True)
        except ApiError as err:
            await watch.publish(None, err)
        except Exception as err:  # subscribers must hear of it, not wait on keep-alives forever
            log.error("status watcher failed", workflow_id=watch.latest.workflow_id, exc_info=err)
            await watch.publish(None, ApiError(500, "internal", "the status watcher failed"))

    async def _follow_run(self, client: Client, watch: Watch) -> bool:
        """Follow the current run's history until it ends; False when no newer run goes on."""
        handle = client.get_workflow_handle(watch.latest.workflow_id)
        # Without a token the first pages are the history so far; after them the server holds
        # each request until an event is added.
        history = handle.fetch_history_events(wait_new_event=True, rpc_timeout=HISTORY_WAIT)
        last_query = float("-inf")
        loop = asyncio.get_running_loop()
        while not watch.done:
            try:
                await history.fetch_next_page()
            except RPCError as err:
                if timed_out(err):
                    continue  # our own bound on the long poll ran out: send it again
                raise from_rpc(err, not_found=f"no run {watch.latest.workflow_id!r}") from None
            closed = history.next_page_token is None
            if history.current_page or closed:
                await asyncio.sleep(max(0.0, last_query + self.poll_s - loop.time()))
                last_query = loop.time()
                await self._refresh(client, watch)
            if closed:
                return watch.done or await _continued(client, watch.latest.workflow_id)
        return True

    async def _refresh(self, client: Client, watch: Watch) -> None:
        watch.queries += 1
        status = await query_status(client, watch.latest.workflow_id)
        if status.revision != watch.latest.revision:
            await watch.publish(status)

    @property
    def watched(self) -> int:
        return len(self._watches)

    def watch(self, workflow_id: str) -> Watch | None:
        """The run's live watch, if anyone follows it."""
        return self._watches.get(workflow_id)


async def _continued(client: Client, workflow_id: str) -> bool:
    """Whether a newer run of this workflow id is going on (it continued as new)."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        raise from_rpc(err, not_found=f"no run {workflow_id!r}") from None
    return desc.status == WorkflowExecutionStatus.RUNNING


async def stream(
    hub: StatusHub,
    client: Client,
    first: RunStatus,
    last_id: int | None,
    *,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """Emit each revision newer than `last_id`, with keep-alives, until the run closes. The
    reconnect delay rides on the first event: every block with data is a status (or an error)."""
    retry: int | None = RECONNECT_MS
    async with hub.subscribe(client, first) as watch:
        status = first
        while True:
            if last_id is None or status.revision > last_id:
                last_id = status.revision
                yield status_event(status, retry)
                retry = None
            if is_closed(status):
                return
            async with watch.changed:
                try:
                    moved = functools.partial(watch.moved_past, status.revision)
                    await asyncio.wait_for(watch.changed.wait_for(moved), timeout=keepalive_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
            if watch.error is not None:
                # Headers are gone by now, so the failure travels as an event and the stream ends.
                err = watch.error
                yield f"event: error\ndata: {json.dumps(body(err.code, err.message))}\n\n"
                return
            if watch.latest.revision <= status.revision:
                return  # the history ended and no newer revision came: nothing will follow
            status = watch.latest
