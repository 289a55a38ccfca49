"""Helpers for API tests: waiting on conditions, reading Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from api import json_patch
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


async def statuses(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Each event of a status stream as {id, event, data, size}, `data` the whole status (the
    first event's, with each patch after it applied) or an error; `size` what the event took on
    the wire."""
    status: Any = None
    event: dict[str, Any] = {}
    size = 0
    async for line in response.aiter_lines():
        size += len(line.encode()) + 1
        if not line:
            if "data" in event:
                data = json.loads(event["data"])
                if event.get("event") == "patch":
                    status = data = json_patch.apply(status, data)
                elif event.get("event") == "status":
                    status = data
                yield {**event, "data": data, "size": size}
            event, size = {}, 0
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            event[field] = value.lstrip()


def chunk_states(chunks: list[str]) -> list[str]:
    """The run state after each event of a stream's raw chunks (patches applied in turn)."""
    status: Any = None
    states = []
    for chunk in chunks:
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if fields.get("event") == "status":
            status = json.loads(fields["data"])
        elif fields.get("event") == "patch":
            status = json_patch.apply(status, json.loads(fields["data"]))
        else:
            continue
        states.append(status["state"])
    return states
