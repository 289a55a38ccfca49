"""The inbox over real runs whose definitions give their gates priorities and review text from
data: the workflow sets both when a gate opens, the API sorts, filters and the CLI prints them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.api.test_cli import cli

Auth = Callable[[str], dict[str, str]]


def gated(name: str, team: str, approval: dict[str, Any], **step: Any) -> dict[str, Any]:
    """A one-step inline pipeline whose gate the test's team decides."""
    body = {"id": "ship", "tool": "test.echo", "with": {"x": 1}, **step}
    body["approval"] = {"approvers": [f"role:{team}"], **approval}
    return {
        "name": name,
        "input": {"type": "object", "properties": {"level": {"type": "string"}}},
        "steps": [body],
    }


async def test_inbox_orders_and_filters_priorities_set_by_definitions(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str, keys: dict[str, str]
) -> None:
    """Priorities written in definitions (a word, a reference to the input, a condition per
    for_each item) come back urgent first, then by deadline, and `priority=urgent` and the
    CLI's `--priority urgent,high` keep exactly those gates."""
    each = gated(
        "each",
        team,
        {"priority": {"urgent": "item.hot"}},
        for_each="${input.items}",
        **{"with": {"hot": "${item.hot}"}},
    )
    each["input"]["properties"]["items"] = {"type": "array"}
    ids = {
        "low": await start_run(
            gated("low", team, {"priority": "low", "timeout": "30m"}), {}, who="root"
        ),
        "high": await start_run(gated("high", team, {"priority": "high"}), {}, who="root"),
        "ref": await start_run(
            gated("ref", team, {"priority": "${input.level}", "timeout": "1h"}),
            {"level": "urgent"},
            who="root",
        ),
        "each": await start_run(each, {"items": [{"hot": False}, {"hot": True}]}, who="root"),
    }
    for workflow_id in ids.values():
        await wait_state(http, workflow_id, "waiting", as_("vic"))

    async def inbox(**params: Any) -> list[tuple[str, str, str]]:
        r = await http.get("/approvals", params=params, headers=as_("alice"))
        assert r.status_code == 200, r.text
        return [(i["workflow_id"], i["gate"], i["priority"]) for i in r.json()["items"]]

    expected = [
        (ids["ref"], "ship", "urgent"),
        (ids["each"], "ship.1", "urgent"),
        (ids["high"], "ship", "high"),
        (ids["each"], "ship.0", "normal"),
        (ids["low"], "ship", "low"),
    ]
    await eventually(inbox, lambda got: got == expected, "all gates in order")
    assert await inbox(priority="urgent") == expected[:2]
    url = str(http.base_url).rstrip("/")
    code, out, err = await cli(url, keys["alice"], "inbox", "--priority", "urgent,high")
    assert code == 0, err
    rows = [r.split() for r in out.splitlines()[1:]]
    assert [(r[0], r[-2]) for r in rows] == [
        ("urgent", "ship"),
        ("urgent", "ship.1"),
        ("high", "ship"),
    ]


async def test_cli_inbox_review_from_run_input_cannot_drive_the_terminal(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str, keys: dict[str, str]
) -> None:
    """A review filled from the run's input with terminal escapes and a line break is printed
    with `?` marks, on one line, by `stepgate inbox`."""
    definition = gated("escapes", team, {"review": "check ${input.level}"})
    workflow_id = await start_run(definition, {"level": "\x1b[2J\nurgent  FAKE"}, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    url = str(http.base_url).rstrip("/")

    async def listed() -> str:
        return (await cli(url, keys["alice"], "inbox"))[1]

    out = await eventually(listed, lambda text: workflow_id in text, "listed")
    assert "\x1b" not in out
    (row,) = out.splitlines()[1:]
    assert row.endswith("ship (before) — check ?[2J?urgent  FAKE")
