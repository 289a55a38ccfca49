"""Helpers for API tests: waiting on conditions, reading Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from tests.support import util

T = TypeVar("T")
CLOSED = ("completed", "failed", "cancelled")


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str, timeout_s: float = 20.0
) -> T:
    """Call `probe` until `ok` holds for its result; fail with `what` after the deadline."""
    return await util.eventually(probe, ok=ok, what=what, within=timeout_s, interval=0.1)


async def wait_state(http: httpx.AsyncClient, workflow_id: str, state: str, headers: Any) -> Any:
    async def probe() -> Any:
        return (await http.get(f"/workflows/{workflow_id}", headers=headers)).json()

    def reached(status: Any) -> bool:
        if status.get("state") in CLOSED and status["state"] != state:
            raise AssertionError(
                f"{workflow_id} closed as {status['state']}, not {state}: {status}"
            )
        return bool(status.get("state") == state)

    return await eventually(probe, reached, f"{workflow_id} {state}")


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each event of a text/event-stream response as {id, event, data}; comments dropped."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in event:
                event["data"] = json.loads(event["data"])
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            event[field] = value.lstrip()
