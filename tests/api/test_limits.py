"""Per-key request rate and live streams, and the per-run bound on decisions in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import pytest

from activities.config import Settings
from api.errors import ApiError
from api.limits import KeyLimits, RunLanes
from tests.api.conftest import Serve, StartRun
from tests.api.helpers import wait_state
from tests.support import util

Auth = Callable[[str], dict[str, str]]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_refills_at_its_rate_per_principal() -> None:
    """A principal past its burst is refused with Retry-After until its bucket refills; another
    principal's budget is untouched, and a rate of 0 turns the limit off."""
    clock = Clock()
    limits = KeyLimits(rate_per_s=2, burst=2, streams_per_key=1, clock=clock)
    limits.admit("vic")
    limits.admit("vic")
    with pytest.raises(ApiError) as refused:
        limits.admit("vic")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert refused.value.headers == {"Retry-After": "1"}
    limits.admit("alice")
    clock.now += 0.5  # one token at 2 per second
    limits.admit("vic")
    with pytest.raises(ApiError):
        limits.admit("vic")
    off = KeyLimits(rate_per_s=0, burst=1, streams_per_key=1, clock=clock)
    for _ in range(1_000):
        off.admit("vic")


async def test_run_lane_busy_past_deadline_or_queue_bound() -> None:
    """With every turn of a run taken, a decision that cannot get one before its deadline, or
    that finds the waiting line full, is refused 503 run_busy with Retry-After; other runs and
    later turns are unaffected."""
    lanes = RunLanes(per_run=1, max_waiting=1)
    loop = asyncio.get_running_loop()
    async with lanes.turn("r1", loop.time() + 5) as waited:
        assert waited is False
        with pytest.raises(ApiError) as late:
            async with lanes.turn("r1", loop.time() + 0.05):
                pass
        assert (late.value.status, late.value.code) == (503, "run_busy")
        assert late.value.headers and late.value.headers["Retry-After"] == "1"
        queued = asyncio.create_task(_take(lanes, "r1", loop.time() + 30))
        await util.eventually(lambda: lanes.in_use("r1") == 2, what="second decision queued")
        with pytest.raises(ApiError) as full:
            async with lanes.turn("r1", loop.time() + 30):
                pass
        assert full.value.code == "run_busy"
        async with lanes.turn("r2", loop.time() + 1):
            pass
    assert await queued is True
    assert lanes.in_use("r1") == 0


async def _take(lanes: RunLanes, workflow_id: str, deadline: float) -> bool:
    async with lanes.turn(workflow_id, deadline) as waited:
        return waited


async def test_requests_past_rate_limit_429_with_retry_after(
    serve: Serve, api_settings: Settings, as_: Auth
) -> None:
    """A key that spends its burst gets 429 rate_limited with Retry-After in the API's error
    shape; another key, /healthz and the docs are not limited."""
    settings = api_settings.model_copy(
        update={"stepgate_rate_per_s": 0.001, "stepgate_rate_burst": 3}
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        for _ in range(3):
            assert (await http.get("/definitions", headers=as_("vic"))).status_code == 200
        r = await http.get("/definitions", headers=as_("vic"))
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        r = await http.post("/workflows", json={"definition": 1}, headers=as_("vic"))
        assert r.status_code == 429  # refused before the body is even looked at
        assert (await http.get("/definitions", headers=as_("alice"))).status_code == 200
        for path in ("/healthz", "/docs", "/openapi.json"):
            for _ in range(5):
                assert (await http.get(path)).status_code == 200, path
        assert (
            await http.get("/definitions", headers={"Authorization": "Bearer x"})
        ).status_code == 401


async def test_events_streams_past_limit_429_until_one_closes(
    http: httpx.AsyncClient, serve: Serve, api_settings: Settings, start_run: StartRun, as_: Auth
) -> None:
    """A key holding its maximum of live streams is refused another with 429 too_many_streams;
    other keys still open theirs, and closing a stream frees its slot."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    settings = api_settings.model_copy(update={"stepgate_streams_per_key": 2})
    path = f"/workflows/{workflow_id}/events"
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as api:

        async def try_stream(who: str) -> httpx.Response:
            """Open a stream and close it at once; a refusal's body is read (a stream's never ends)."""
            async with api.stream("GET", path, headers=as_(who)) as r:
                if r.status_code != 200:
                    await r.aread()
                return r

        async with contextlib.AsyncExitStack() as held:
            for _ in range(2):
                opened = await held.enter_async_context(api.stream("GET", path, headers=as_("vic")))
                assert opened.status_code == 200
            refused = await try_stream("vic")
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert int(refused.headers["Retry-After"]) >= 1
            assert (await try_stream("alice")).status_code == 200
        # Both of vic's streams are closed now; the server notices and frees their slots.
        await util.eventually(
            lambda: try_stream("vic"), ok=lambda r: r.status_code == 200, what="slot freed"
        )
