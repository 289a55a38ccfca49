"""Server-Sent Events for one run: a `status` event per revision until the run closes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator

from temporalio.client import Client

from api.errors import ApiError, body
from api.status import query_status
from workflows.contract import CLOSED_RUN_STATES
from workflows.models import RunStatus

POLL_S = 0.2
KEEPALIVE_S = 15.0
# Tells EventSource how long to wait before it reconnects (with Last-Event-ID) after a drop.
RECONNECT_MS = 1_000


def status_event(status: RunStatus) -> str:
    return f"id: {status.revision}\nevent: status\ndata: {status.model_dump_json()}\n\n"


def is_closed(status: RunStatus) -> bool:
    # RunState is a StrEnum, so the plain string from the query compares equal.
    return status.state in CLOSED_RUN_STATES


class Watch:
    """The latest status of one run, refreshed by a single poller for all its subscribers."""

    def __init__(self, first: RunStatus) -> None:
        self.latest = first
        self.error: ApiError | None = None
        self.subscribers = 0
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None

    async def publish(self, status: RunStatus | None, error: ApiError | None = None) -> None:
        async with self.changed:
            if status is not None:
                self.latest = status
            self.error = error
            self.changed.notify_all()

    def moved_past(self, revision: int) -> bool:
        return self.error is not None or self.latest.revision > revision

    @property
    def done(self) -> bool:
        return self.error is not None or is_closed(self.latest)


class StatusHub:
    """One status poller per watched run, shared by every /events subscriber of that run: a
    hundred people watching one run cost the worker one query per tick, not a hundred."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self._watches: dict[str, Watch] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self, client: Client, first: RunStatus) -> AsyncIterator[Watch]:
        watch = self._watches.get(first.workflow_id)
        if watch is None or watch.done:
            watch = self._watches[first.workflow_id] = Watch(first)
            watch.task = asyncio.create_task(self._poll(client, watch))
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

    async def _poll(self, client: Client, watch: Watch) -> None:
        while not watch.done:
            await asyncio.sleep(self.poll_s)
            try:
                status = await query_status(client, watch.latest.workflow_id)
            except ApiError as err:
                await watch.publish(None, err)
                return
            if status.revision != watch.latest.revision:
                await watch.publish(status)

    @property
    def watched(self) -> int:
        return len(self._watches)


async def stream(
    hub: StatusHub,
    client: Client,
    first: RunStatus,
    last_id: int | None,
    *,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """Emit each revision newer than `last_id`, with keep-alives, until the run closes."""
    yield f"retry: {RECONNECT_MS}\n: stream open\n\n"
    async with hub.subscribe(client, first) as watch:
        status = first
        while True:
            if last_id is None or status.revision > last_id:
                last_id = status.revision
                yield status_event(status)
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
            status = watch.latest
