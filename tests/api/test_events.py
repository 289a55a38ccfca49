"""Live status over Server-Sent Events: the status whole, then patches; shared watchers; a byte
budget per principal; streams that end with their run or their key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from temporalio.client import Client

from api.events import StatusHub, snapshot, stream
from tests.api.conftest import StartRun
from tests.api.helpers import chunk_states, statuses, wait_state
from tests.api.test_status_reads import counting
from tests.support import util

Auth = Callable[[str], dict[str, str]]


async def test_events_gated_run_waiting_running_completed(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """The stream shows waiting, then running after an approval mid-stream, then completed: the
    status whole first, then patches that bring it to each new revision."""
    workflow_id = await start_run()
    seen: list[dict[str, Any]] = []
    approved = False

    async def follow() -> None:
        nonlocal approved
        async with http.stream("GET", f"/workflows/{workflow_id}/events", headers=as_("vic")) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for event in statuses(r):
                seen.append(event)
                if event["data"]["state"] == "waiting" and not approved:
                    approved = True
                    d = await http.post(
                        f"/workflows/{workflow_id}/gates/release",
                        json={"action": "approve"},
                        headers=as_("alice"),
                    )
                    assert d.status_code == 200

    await asyncio.wait_for(follow(), timeout=30)
    states = [e["data"]["state"] for e in seen]
    assert [e["event"] for e in seen] == ["status"] + ["patch"] * (len(seen) - 1)
    revisions = [int(e["id"]) for e in seen]
    assert revisions == sorted(set(revisions))
    first_wait = states.index("waiting")
    assert "running" in states[first_wait:]
    assert states[-1] == "completed"


async def test_events_resume_after_last_event_id(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Reconnecting with Last-Event-ID skips what was seen; at the last revision nothing is sent."""
    workflow_id = await start_run(approval_mode="auto", who="root")
    final = await wait_state(http, workflow_id, "completed", as_("vic"))
    last = final["revision"]

    async def events(since: int) -> list[dict[str, Any]]:
        headers = {**as_("vic"), "Last-Event-ID": str(since)}
        async with http.stream("GET", f"/workflows/{workflow_id}/events", headers=headers) as r:
            return [e async for e in statuses(r)]

    resumed = await asyncio.wait_for(events(last - 1), timeout=10)
    assert [(int(e["id"]), e["event"]) for e in resumed] == [(last, "status")]
    assert resumed[0]["data"] == final
    assert await asyncio.wait_for(events(last), timeout=10) == []
    bad = await http.get(
        f"/workflows/{workflow_id}/events", headers={**as_("vic"), "Last-Event-ID": "x"}
    )
    assert bad.status_code == 422


async def test_events_subscribers_of_one_run_share_one_poller(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, client: Client
) -> None:
    """Two watchers of the same run are fed by a single status poller, and both see it close."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    hub = StatusHub(poll_s=0.05)
    first = await snapshot(client, workflow_id)
    chunks: list[list[str]] = [[], []]

    async def follow(i: int) -> None:
        async for chunk in stream(hub, client, first, None):
            chunks[i].append(chunk)

    followers = [asyncio.create_task(follow(i)) for i in range(2)]
    await util.eventually(lambda: all(chunks), what="both subscribed")
    assert hub.watched == 1
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200
    await asyncio.wait_for(asyncio.gather(*followers), timeout=30)
    seen = [chunk_states(c) for c in chunks]
    assert seen[0][0] == seen[1][0] == "waiting"
    assert seen[0][-1] == seen[1][-1] == "completed"
    assert hub.watched == 0


async def test_events_idle_run_sends_no_status_queries(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, client: Client
) -> None:
    """A watcher of a run parked at its gate waits on the run's history, not on status queries;
    the approval moves the history and the stream follows the run to completed."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    queries, counted = counting(client)
    hub = StatusHub()
    first = await snapshot(client, workflow_id)
    chunks: list[str] = []

    async def follow() -> None:
        async for chunk in stream(hub, counted, first, None):
            chunks.append(chunk)

    follower = asyncio.create_task(follow())
    # Caught up: the history read so far was followed by one status query.
    await util.eventually(lambda: (w := hub.watch(workflow_id)) is not None and w.queries >= 1)
    before = queries.sent
    # An idle second, the window in which the old poller sent five queries.
    await asyncio.sleep(1.0)
    assert queries.sent == before
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200
    await asyncio.wait_for(follower, timeout=30)
    states = chunk_states(chunks)
    assert states[0] == "waiting" and states[-1] == "completed"
    assert "running" in states
    assert queries.sent > before


async def test_events_stream_ends_when_run_is_terminated(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, client: Client
) -> None:
    """A run terminated from outside never reports a closed status; its stream still ends when
    the run's history does, instead of sending keep-alives forever."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    hub = StatusHub()
    first = await snapshot(client, workflow_id)
    chunks: list[str] = []

    async def follow() -> None:
        async for chunk in stream(hub, client, first, None):
            chunks.append(chunk)

    follower = asyncio.create_task(follow())
    await util.eventually(lambda: (w := hub.watch(workflow_id)) is not None and w.queries >= 1)
    await client.get_workflow_handle(workflow_id).terminate("stopped by an operator")
    await asyncio.wait_for(follower, timeout=30)
    assert chunk_states(chunks) == ["waiting"]
    assert hub.watched == 0
