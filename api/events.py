"""Server-Sent Events for one run: a `status` event per revision until the run closes."""

from __future__ import annotations

import asyncio
import json
import time
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


async def stream(
    client: Client,
    first: RunStatus,
    last_id: int | None,
    *,
    poll_s: float = POLL_S,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """Poll the status query; emit only revisions newer than `last_id`; stop once closed."""
    yield f"retry: {RECONNECT_MS}\n: stream open\n\n"
    status = first
    quiet_since = time.monotonic()
    while True:
        if last_id is None or status.revision > last_id:
            last_id = status.revision
            quiet_since = time.monotonic()
            yield status_event(status)
        if is_closed(status):
            return
        if time.monotonic() - quiet_since >= keepalive_s:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll_s)
        try:
            status = await query_status(client, first.workflow_id)
        except ApiError as err:
            # Headers are gone by now, so the failure travels as an event and the stream ends.
            yield f"event: error\ndata: {json.dumps(body(err.code, err.message))}\n\n"
            return
