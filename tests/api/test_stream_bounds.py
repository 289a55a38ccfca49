"""Live streams are bounded: a principal's streams share a budget of bytes a second (the revisions
they cannot afford are skipped, never queued), and a stream ends when its key is removed from the
keys file or expires."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from activities.config import Settings
from tests.api.conftest import KEYS, Serve, StartRun
from tests.api.helpers import eventually, statuses, wait_state

Auth = Callable[[str], dict[str, str]]
ITEMS = 12


def item_gates(team: str) -> dict[str, Any]:
    """A for_each step whose every item waits at a gate the team decides."""
    return {
        "name": "item_gates",
        "input": {"type": "object", "properties": {"n": {"type": "array"}}},
        "steps": [
            {
                "id": "each",
                "for_each": "${input.n}",
                "tool": "test.echo",
                "with": {"n": "${item}"},
                "approval": {"approvers": [f"role:{team}"], "review": "item ${item}"},
            }
        ],
    }


def _write_keys(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the keys file whole (a new inode), as docs/api.md asks."""
    fresh = path.with_suffix(".new")
    fresh.write_text(yaml.safe_dump(entries))
    os.replace(fresh, path)


async def test_streams_of_one_principal_stay_within_its_byte_budget(
    http: httpx.AsyncClient,
    serve: Serve,
    api_settings: Settings,
    start_run: StartRun,
    as_: Auth,
    team: str,
) -> None:
    """Two streams of one viewer, on an API allowing 2 KiB a second, while twelve item gates are
    approved: whatever they have received at any moment is at most the budget for the time
    since they opened plus one event, the revisions they could not afford are skipped, and each
    still ends at the run's final status."""
    workflow_id = await start_run(item_gates(team), {"n": list(range(ITEMS))}, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    rate = burst = 2_048
    settings = api_settings.model_copy(
        update={"stepgate_stream_bytes_per_s": rate, "stepgate_stream_burst_bytes": burst}
    )
    loop = asyncio.get_running_loop()
    received: list[int] = []  # bytes of every event either stream received, in order
    largest = 0
    seen: list[list[dict[str, Any]]] = [[], []]
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as api:
        opened = loop.time()

        async def follow(i: int) -> None:
            nonlocal largest
            path = f"/workflows/{workflow_id}/events"
            async with api.stream("GET", path, headers=as_("vic")) as r:
                assert r.status_code == 200
                async for event in statuses(r):
                    received.append(event["size"])
                    largest = max(largest, event["size"])
                    allowed = burst + rate * (loop.time() - opened) + largest
                    assert sum(received) <= allowed, (sum(received), allowed)
                    seen[i].append(event)

        followers = [asyncio.create_task(follow(i)) for i in range(2)]
        for k in range(ITEMS):
            r = await http.post(
                f"/workflows/{workflow_id}/gates/each.{k}",
                json={"action": "approve"},
                headers=as_("alice"),
            )
            assert r.status_code == 200, r.text
        await asyncio.wait_for(asyncio.gather(*followers), timeout=120)
    final = await wait_state(http, workflow_id, "completed", as_("vic"))
    for events in seen:
        assert events[-1]["data"] == final
        revisions = [int(e["id"]) for e in events]
        assert revisions == sorted(set(revisions))
    # Each approval moved the run at least once; the streams could not afford every revision.
    assert final["revision"] > ITEMS
    assert min(len(events) for events in seen) < ITEMS


async def _stream_until_error(
    api: httpx.AsyncClient, path: str, headers: dict[str, str], change: Any
) -> dict[str, Any]:
    """Follow a stream; after its first event call `change`; return the event it ends with."""
    last: dict[str, Any] = {}
    async with api.stream("GET", path, headers=headers) as r:
        assert r.status_code == 200
        async for event in statuses(r):
            if not last:
                await change()
            last = event
    return last


async def test_stream_ends_when_its_key_is_removed(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, api_settings: Settings
) -> None:
    """A viewer's stream on a run parked at its gate ends with an `unauthorized` error event
    once the viewer's key is taken out of the keys file (it used to go on for ever)."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    path = api_settings.stepgate_api_keys_file
    assert path is not None
    kept = [e for e in yaml.safe_load(path.read_text()) if e["principal"] != "vic"]

    async def remove() -> None:
        _write_keys(path, kept)

    last = await asyncio.wait_for(
        _stream_until_error(http, f"/workflows/{workflow_id}/events", as_("vic"), remove), 30
    )
    assert last["event"] == "error" and last["data"]["error"]["code"] == "unauthorized"


async def test_stream_ends_when_its_key_expires(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, api_settings: Settings
) -> None:
    """A stream opened with a key that expires a few seconds later ends with an `expired` error
    event when it does, though nothing else changed."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    path = api_settings.stepgate_api_keys_file
    assert path is not None
    expires = datetime.now(UTC) + timedelta(seconds=4)
    entry = {"key": "key-eve-0123456789", "principal": "eve", "roles": ["viewer"]}
    _write_keys(path, [*yaml.safe_load(path.read_text()), {**entry, "expires": expires}])
    eve = {"Authorization": f"Bearer {entry['key']}"}

    async def nothing() -> None:
        return None

    async def read() -> httpx.Response:
        return await http.get(f"/workflows/{workflow_id}", headers=eve)

    # The keys file is looked at once a second at most: wait until the new key works.
    await eventually(read, lambda r: r.status_code == 200, "the new key works")
    last = await asyncio.wait_for(
        _stream_until_error(http, f"/workflows/{workflow_id}/events", eve, nothing), 30
    )
    assert last["event"] == "error" and last["data"]["error"]["code"] == "expired"
    assert datetime.now(UTC) >= expires
    assert KEYS["vic"][0] in path.read_text(), "the other keys stay"
