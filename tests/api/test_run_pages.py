"""A run's status stays a bounded summary at full size, during the run and after it closed, and
its paged routes return everything, page by page, following `next_cursor`; bad paging is a 422
naming the parameter, a list that does not exist a 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from workflows.rules.bounds import STATUS_MAX_BYTES

Auth = Callable[[str], dict[str, str]]
ITEMS = 1_000


def for_each(team: str, *, gated: bool, blob: int = 0) -> dict[str, Any]:
    """One for_each step over `input.n`; each item waits at a gate with a 900-character review
    (`gated`), or returns an output of `blob` bytes and more."""
    step: dict[str, Any] = {
        "id": "each",
        "for_each": "${input.n}",
        "tool": "test.blob",
        "with": {"n": "${item}", "bytes": blob},
    }
    if gated:
        step["approval"] = {"approvers": [f"role:{team}"], "review": "r" * 890 + " ${item}"}
    return {
        "name": "big",
        "input": {"type": "object", "properties": {"n": {"type": "array"}}},
        "steps": [step],
    }


async def walk(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], **query: Any
) -> list[dict[str, Any]]:
    """Every page of a paged route, each asked for with the cursor the page before gave."""
    pages = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor is not None else {})}
        r = await http.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) <= ITEMS, "the cursor does not move"


async def test_status_and_pages_of_1000_open_gates_with_long_reviews(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """A run with a thousand open gates reviewing 900 characters each answers its status (it was
    a 1.2 MB status, refused past Temporal's limit) under 256 KiB, most urgent gates first with
    the count of all; the gates and items routes return all thousand, in order, page by page."""
    workflow_id = await start_run(for_each(team, gated=True), {"n": list(range(ITEMS))}, who="root")

    async def read() -> httpx.Response:
        return await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))

    got = await eventually(
        read, lambda r: r.json().get("open_gates_total") == ITEMS, "all gates open", 120
    )
    assert len(got.content) <= STATUS_MAX_BYTES
    status = got.json()
    assert 0 < len(status["open_gates"]) < ITEMS
    assert status["steps"][0]["item_counts"] == {"waiting": ITEMS}
    base = f"/workflows/{workflow_id}"
    gates = await walk(http, f"{base}/gates", as_("vic"), state="open", limit=500)
    assert len(gates) > 1 and {p["total"] for p in gates} == {ITEMS}
    listed = [g for p in gates for g in p["entries"]]
    assert [g["gate"] for g in listed] == [f"each.{i}" for i in range(ITEMS)]
    assert all(g["review"] == "r" * 890 + f" {g['item']}" for g in listed)
    items = await walk(http, f"{base}/steps/each/items", as_("vic"), limit=500)
    assert [i["index"] for p in items for i in p["entries"]] == list(range(ITEMS))
    steps = await walk(http, f"{base}/steps", as_("vic"))
    assert [s["id"] for p in steps for s in p["entries"]] == ["each"]


async def test_status_and_items_of_1000_outputs_after_the_run_completed(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """A closed run of a thousand items with outputs answers its status (the worker replays it)
    under 256 KiB with the counts, and its items route returns every item with its preview.
    (Outputs of 600 bytes: a thousand of 3 KB make a state this branch cannot carry across
    continue-as-new; tests/rules/test_status_bounds.py covers 3 KB at full size.)"""
    definition = for_each(team, gated=False, blob=600)
    workflow_id = await start_run(definition, {"n": list(range(ITEMS))}, who="root")
    final = await wait_state(http, workflow_id, "completed", as_("vic"))
    r = await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))
    assert r.status_code == 200 and len(r.content) <= STATUS_MAX_BYTES
    assert final["steps"][0]["item_counts"] == {"succeeded": ITEMS}
    path = f"/workflows/{workflow_id}/steps/each/items"
    items = [i for p in await walk(http, path, as_("vic"), limit=500) for i in p["entries"]]
    assert [i["index"] for i in items] == list(range(ITEMS))
    assert all('"blob": "bbb' in (i["output_preview"] or "") for i in items)


async def test_paging_refused_with_the_parameter_or_the_list_named(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Bad limits, states and malformed cursors are 422s naming `query.<param>`; a step that
    does not exist, or has no items or iterations, and a cursor that names no entry of the run
    are 404s (no such page)."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    base = f"/workflows/{workflow_id}"
    refused = [
        (f"{base}/steps", {"limit": 0}, "query.limit"),
        (f"{base}/steps", {"limit": 501}, "query.limit"),
        (f"{base}/steps", {"state": "sleeping"}, "query.state"),
        (f"{base}/steps", {"cursor": "no such step"}, "query.cursor"),
        (f"{base}/gates", {"state": "closed"}, "query.state"),
        (f"{base}/gates", {"cursor": "release.x"}, "query.cursor"),
        (f"{base}/steps/release/items", {"cursor": "-1"}, "query.cursor"),
        (f"{base}/steps/release/iterations", {"cursor": "1" * 13}, "query.cursor"),
        (f"{base}/steps/bad%20step/items", {}, "path.step"),
    ]
    for path, params, where in refused:
        r = await http.get(path, params=params, headers=as_("vic"))
        assert r.status_code == 422, (path, params, r.text)
        assert [d["path"] for d in r.json()["error"]["details"]] == [where], (path, params)
    missing = [f"{base}/steps/nosuch/items", f"{base}/steps/release/items"]
    missing += [f"{base}/steps/release/iterations", "/workflows/no-such-run/steps"]
    for path in missing:
        r = await http.get(path, headers=as_("vic"))
        assert r.status_code == 404, (path, r.text)
    for path, cursor in [(f"{base}/steps", "nosuchstep"), (f"{base}/gates", "nosuchgate")]:
        r = await http.get(path, params={"cursor": cursor}, headers=as_("vic"))
        assert r.status_code == 404 and "names no" in r.json()["error"]["message"], r.text
    gates = (await http.get(f"{base}/gates", headers=as_("vic"))).json()
    assert [g["gate"] for g in gates["entries"]] == ["release"] and gates["next_cursor"] is None
    after = await http.get(f"{base}/gates", params={"cursor": "release"}, headers=as_("vic"))
    assert after.json() == {"entries": [], "total": 1, "next_cursor": None}
    assert (await http.get(f"{base}/steps", headers={})).status_code == 401
