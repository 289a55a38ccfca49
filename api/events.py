"""Server-Sent Events for one run: the status whole once, then each change as a JSON Patch.

One watcher per watched run serves all its subscribers, and it does not poll the `status` query:
it long-polls the run's history (GetWorkflowExecutionHistory with wait_new_event, from the end of
the history on) and queries status only when the history moved, at most every POLL_S and less
often when the status is slow to answer (revisions closer together arrive as one). An idle run's
streams cost the worker nothing, and the server one parked request per run.

A stream sends a `status` event (the whole status) first, on every connection (a reconnect with
Last-Event-ID included: the server does not know what the client holds), and then `patch` events:
RFC 6902 operations that turn the last status this stream sent into the newest one. Its
principal's streams share a byte budget (api/limits.py ByteBudget): a stream that has used it
waits, and then sends one patch to the newest status, skipping the revisions in between; it holds
no more than the last status it sent. The key a stream was opened with is checked again before
each event and every KEY_CHECK_S: removed, expired or without `read`, the stream sends an `error`
event and ends."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from api import json_patch
from api.auth import KeyWatch
from api.errors import ApiError, body, from_rpc, timed_out
from api.limits import ByteBudget
from api.status import query_status_json
from workflows.contract import CLOSED_RUN_STATES

log = structlog.get_logger("stepgate.api")

# The least time between two status queries of one watched run: a busy run whose history moves
# all the time costs its worker at most this rate of queries. A status slow to answer (a large
# run, a busy worker) is asked less often still: the watcher waits QUERY_SHARE's inverse times
# as long as the last answer took, so answering its watchers takes a run's worker at most about
# that share of its time.
POLL_S = 0.2
QUERY_SHARE = 0.05
# The longest one history long poll may stay out before it is sent again; the server answers
# sooner (after ~20 s) with an empty page when nothing happened.
HISTORY_WAIT = timedelta(seconds=30)
KEEPALIVE_S = 15.0
# How often an idle stream checks that its key still holds (it also checks before each event).
KEY_CHECK_S = 1.0
# Tells EventSource how long to wait before it reconnects (with Last-Event-ID) after a drop.
RECONNECT_MS = 1_000


@dataclass(frozen=True)
class Snapshot:
    """One status as the worker wrote it, and parsed (patches are computed between these)."""

    revision: int
    state: str
    text: str
    doc: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, raw: bytes) -> Snapshot:
        doc = json.loads(raw)
        return cls(int(doc["revision"]), str(doc["state"]), raw.decode(), doc)

    @property
    def workflow_id(self) -> str:
        return str(self.doc["workflow_id"])

    @property
    def closed(self) -> bool:
        # RunState is a StrEnum, so the plain string from the query compares equal.
        return self.state in CLOSED_RUN_STATES


async def snapshot(client: Client, workflow_id: str) -> Snapshot:
    """The run's status now (404 for an unknown run, as any status read; 409 for a workflow
    whose `status` query answers something that is not a run's status)."""
    raw = await query_status_json(client, workflow_id)
    try:
        return Snapshot.of(raw)
    except (ValueError, TypeError, KeyError):
        raise ApiError(
            409, "status_unavailable", f"run {workflow_id!r} did not answer with a status"
        ) from None


def status_event(snap: Snapshot) -> str:
    return f"id: {snap.revision}\nevent: status\ndata: {snap.text}\n\n"


def patch_event(base: Snapshot, snap: Snapshot) -> str:
    ops = json.dumps(json_patch.diff(base.doc, snap.doc), separators=(",", ":"), ensure_ascii=False)
    return f"id: {snap.revision}\nevent: patch\ndata: {ops}\n\n"


def error_event(err: ApiError) -> str:
    return f"event: error\ndata: {json.dumps(body(err.code, err.message))}\n\n"


class Watch:
    """The latest status of one run, refreshed by a single watcher for all its subscribers."""

    def __init__(self, first: Snapshot) -> None:
        self.latest = first
        self.error: ApiError | None = None
        # The run's history ended without a closed status (terminated, timed out): no revision
        # will follow, so streams end instead of waiting forever.
        self.ended = False
        self.subscribers = 0
        self.queries = 0
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None
        # Events for the latest status, by the revision the stream holds (None: none yet), so
        # streams at the same revision share one patch.
        self._events: dict[int | None, str] = {}

    async def publish(
        self, status: Snapshot | None, error: ApiError | None = None, ended: bool = False
    ) -> None:
        async with self.changed:
            if status is not None:
                self.latest = status
                self._events = {}
            self.error = error
            self.ended = ended
            self.changed.notify_all()

    def event(self, base: Snapshot | None, target: Snapshot) -> str:
        """The event that brings a stream holding `base` to `target` (the latest status)."""
        key = base.revision if base is not None else None
        found = self._events.get(key) if target is self.latest else None
        if found is None:
            found = status_event(target) if base is None else patch_event(base, target)
            if target is self.latest:
                self._events[key] = found
        return found

    def moved_past(self, revision: int) -> bool:
        return self.finished or self.latest.revision > revision

    @property
    def finished(self) -> bool:
        """Nothing more will come: an error, or the history ended without a closed status."""
        return self.error is not None or self.ended

    @property
    def done(self) -> bool:
        return self.finished or self.latest.closed


class StatusHub:
    """One history watcher per watched run, shared by every /events subscriber of that run: a
    hundred people watching one run cost what one does."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self._watches: dict[str, Watch] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self, client: Client, first: Snapshot) -> AsyncIterator[Watch]:
        workflow_id = first.workflow_id
        watch = self._watches.get(workflow_id)
        if watch is None or watch.done:
            watch = self._watches[workflow_id] = Watch(first)
            watch.task = asyncio.create_task(self._watch(client, watch))
        elif first.revision > watch.latest.revision:
            await watch.publish(first)
        watch.subscribers += 1
        try:
            yield watch
        finally:
            watch.subscribers -= 1
            if watch.subscribers == 0 and self._watches.get(workflow_id) is watch:
                del self._watches[workflow_id]
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
        last_query, gap = float("-inf"), self.poll_s
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
                await asyncio.sleep(max(0.0, last_query + gap - loop.time()))
                last_query = loop.time()
                await self._refresh(client, watch)
                gap = max(self.poll_s, (loop.time() - last_query) / QUERY_SHARE)
            if closed:
                return watch.done or await _continued(client, watch.latest.workflow_id)
        return True

    async def _refresh(self, client: Client, watch: Watch) -> None:
        watch.queries += 1
        status = await snapshot(client, watch.latest.workflow_id)
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
    first: Snapshot,
    last_id: int | None,
    *,
    budget: ByteBudget | None = None,
    key: KeyWatch | None = None,
    keepalive_s: float = KEEPALIVE_S,
    key_check_s: float = KEY_CHECK_S,
) -> AsyncIterator[str]:
    """The status whole, then a patch for each newer revision (those newer than `last_id` only,
    on a reconnect), with keep-alives, until the run closes or the stream's key no longer holds.
    The reconnect delay rides on the first event."""
    retry = f"retry: {RECONNECT_MS}\n"
    sent: Snapshot | None = None  # the last status this stream sent
    loop = asyncio.get_running_loop()
    async with hub.subscribe(client, first) as watch:
        quiet_since = checked = loop.time()
        while True:
            target = watch.latest
            held = sent.revision if sent is not None else last_id
            if held is None or target.revision > held:
                refusal = await key.refused() if key is not None else None
                if refusal is not None:
                    yield error_event(refusal)
                    return
                checked = loop.time()
                wait = budget.wait_s() if budget is not None else 0.0
                if wait > 0 or watch.latest is not target:
                    # Over budget: later, to whatever is newest by then (the revisions in
                    # between are never sent); also when a newer one came during the check.
                    await asyncio.sleep(min(wait, key_check_s))
                    continue
                event = retry + watch.event(sent, target)
                if budget is not None:
                    budget.spend(len(event.encode()))
                yield event
                retry, sent, quiet_since = "", target, loop.time()
                if target.closed:
                    return
                continue
            if target.closed:
                return  # resumed at the last revision of a closed run: nothing will follow
            if watch.error is not None:
                # Headers are gone by now, so the failure travels as an event and the stream ends.
                yield error_event(watch.error)
                return
            if watch.ended:
                return  # the history ended and no newer revision came: nothing will follow
            now = loop.time()
            timeout = min(quiet_since + keepalive_s, checked + key_check_s) - now
            async with watch.changed:
                moved = functools.partial(watch.moved_past, target.revision)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.changed.wait_for(moved), timeout=max(timeout, 0))
            now = loop.time()
            if key is not None and now - checked >= key_check_s and not watch.moved_past(held):
                refusal = await key.refused()
                if refusal is not None:
                    yield error_event(refusal)
                    return
                checked = now
            if now - quiet_since >= keepalive_s and not watch.moved_past(held):
                quiet_since = now
                yield ": keep-alive\n\n"
