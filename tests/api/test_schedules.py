"""Schedules that start pipelines on Temporal Schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

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
