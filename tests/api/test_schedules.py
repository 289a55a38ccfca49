"""Schedules that start pipelines on Temporal Schedules."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from api.schemas.schedules import NEXT_ACTION_TIMES
from tests.api.helpers import eventually

Auth = Callable[[str], dict[str, str]]


async def test_schedule_create_list_delete(http: httpx.AsyncClient, as_: Auth, team: str) -> None:
    """An operator creates a schedule, sees it listed, and deletes it."""
    schedule_id = f"sched-{team}"
    body = {
        "schedule_id": schedule_id,
        "definition": "hello",
        "input": {"name": "Ada"},
        "cron": "0 6 * * 1-5",
    }
    r = await http.post("/schedules", json=body, headers=as_("olga"))
    assert r.status_code == 201, r.text
    assert r.json()["pipeline"] == "hello"
    assert (await http.post("/schedules", json=body, headers=as_("olga"))).status_code == 409

    async def listed() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await http.get("/schedules", headers=as_("vic"))).json()[
            "items"
        ]
        return [i for i in items if i["schedule_id"] == schedule_id]

    found = await eventually(listed, lambda i: len(i) == 1, "schedule listed")
    assert found[0]["cron"] == "0 6 * * 1-5"
    assert found[0]["next_action_times"]
    r = await http.delete(f"/schedules/{schedule_id}", headers=as_("olga"))
    assert r.status_code == 200
    assert r.json() == {"schedule_id": schedule_id, "deleted": True}
    assert (await http.delete(f"/schedules/{schedule_id}", headers=as_("olga"))).status_code == 404
    await eventually(listed, lambda i: i == [], "schedule gone")


async def test_schedule_errors(http: httpx.AsyncClient, as_: Auth) -> None:
    """Viewers cannot schedule; timing and input are validated before Temporal sees them."""
    ok = {"definition": "hello", "input": {"name": "x"}, "interval": "1h"}
    assert (await http.post("/schedules", json=ok, headers=as_("vic"))).status_code == 403
    both = {**ok, "cron": "* * * * *"}
    assert (await http.post("/schedules", json=both, headers=as_("olga"))).status_code == 422
    bad_input = {**ok, "input": {}}
    r = await http.post("/schedules", json=bad_input, headers=as_("olga"))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "input"
    assert (await http.delete("/schedules/whatever", headers=as_("vic"))).status_code == 403


async def test_schedule_create_returns_the_next_action_times(
    http: httpx.AsyncClient, as_: Auth, team: str
) -> None:
    """`POST /schedules` answers with the ticks Temporal will start runs at: ten, in UTC,
    earliest first, an interval apart; the list shows the first of the same ticks."""
    schedule_id = f"next-{team}"
    body = {"schedule_id": schedule_id, "definition": "hello", "input": {"name": "Ada"}}
    before = datetime.now(UTC)
    r = await http.post("/schedules", json={**body, "interval": "1h"}, headers=as_("olga"))
    assert r.status_code == 201, r.text
    try:
        times = [datetime.fromisoformat(t) for t in r.json()["next_action_times"]]
        assert len(times) == NEXT_ACTION_TIMES
        assert all(t.utcoffset() == timedelta(0) for t in times)
        assert before < times[0] <= before + timedelta(hours=1, seconds=5)
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))
        listed = (await http.get("/schedules", headers=as_("olga"))).json()["items"]
        mine = next(i for i in listed if i["schedule_id"] == schedule_id)
        shown = [datetime.fromisoformat(t) for t in mine["next_action_times"]]
        assert shown and shown == times[: len(shown)]
    finally:
        await http.delete(f"/schedules/{schedule_id}", headers=as_("olga"))


async def test_schedule_create_cron_ticks_follow_the_expression(
    http: httpx.AsyncClient, as_: Auth, team: str
) -> None:
    """A cron schedule's next action times are the expression's own moments (06:00 on weekdays)."""
    schedule_id = f"cron-{team}"
    body = {"schedule_id": schedule_id, "definition": "hello", "input": {"name": "Ada"}}
    r = await http.post("/schedules", json={**body, "cron": "0 6 * * 1-5"}, headers=as_("olga"))
    assert r.status_code == 201, r.text
    try:
        times = [datetime.fromisoformat(t) for t in r.json()["next_action_times"]]
        assert len(times) == NEXT_ACTION_TIMES
        assert all((t.hour, t.minute, t.second) == (6, 0, 0) for t in times)
        assert all(t.weekday() < 5 for t in times) and times == sorted(set(times))
    finally:
        await http.delete(f"/schedules/{schedule_id}", headers=as_("olga"))
