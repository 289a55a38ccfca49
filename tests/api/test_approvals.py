"""The approval inbox and batch decisions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.config import Settings
from api.auth import Caller
from api.decisions import submit
from api.errors import ApiError
from api.limits import RunLanes
from api.routes.approvals import gates_from_status
from api.schemas.workflows import DecisionCreate
from api.scope import listed_runs
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from workflows.contract import MEMO_GATES
from workflows.models import GateSummary, GateView, PipelineInput
from workflows.pipeline import PipelineWorkflow

Auth = Callable[[str], dict[str, str]]


async def test_inbox_of_role_lists_exactly_its_gates(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Alice's inbox holds the team's open gates and nothing for a viewer; decided ones leave it."""
    ids = [await start_run() for _ in range(2)]
    for workflow_id in ids:
        await wait_state(http, workflow_id, "waiting", as_("vic"))

    async def inbox(who: str) -> list[dict[str, Any]]:
        r = await http.get("/approvals", headers=as_(who))
        assert r.status_code == 200
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    items = await eventually(
        lambda: inbox("alice"), lambda i: {x["workflow_id"] for x in i} == set(ids), "inbox"
    )
    assert {(i["gate"], i["stage"], i["review"]) for i in items} == {
        ("release", "before", "release it?")
    }
    assert all(i["digest"].startswith("sha256:") and "approve" in i["actions"] for i in items)
    assert await inbox("vic") == []
    r = await http.post(
        f"/workflows/{ids[0]}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200
    await eventually(
        lambda: inbox("bob"), lambda i: [x["workflow_id"] for x in i] == [ids[1]], "inbox shrink"
    )


async def test_batch_mixed_items_reported_each(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Each batch item succeeds or fails on its own, with its own status code."""
    first, second = await start_run(), await start_run()
    for workflow_id in (first, second):
        await wait_state(http, workflow_id, "waiting", as_("vic"))
    items = [
        {"workflow_id": first, "gate": "release", "action": "approve"},
        {"workflow_id": first, "gate": "release", "action": "approve"},
        {"workflow_id": second, "gate": "nope", "action": "approve"},
        {"workflow_id": "no-such-run", "gate": "release", "action": "approve"},
        {"workflow_id": second, "gate": "release", "action": "retry"},
        {"workflow_id": second, "gate": "release", "action": "reject", "comment": "not today"},
    ]
    r = await http.post("/approvals/batch", json={"items": items}, headers=as_("alice"))
    assert r.status_code == 200
    results = r.json()["results"]
    assert [(x["ok"], x["status_code"]) for x in results] == [
        (True, 200),
        (False, 409),
        (False, 404),
        (False, 404),
        (False, 422),
        (True, 200),
    ]
    assert results[0]["gate_state"] == "approved"
    assert results[5]["gate_state"] == "rejected"
    assert results[1]["error"]["code"] == "gate_not_open"
    await wait_state(http, first, "completed", as_("vic"))
    await wait_state(http, second, "failed", as_("vic"))


async def test_batch_empty_unprocessable(http: httpx.AsyncClient, as_: Auth) -> None:
    """An empty batch is a malformed request."""
    r = await http.post("/approvals/batch", json={"items": []}, headers=as_("alice"))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "body.items"


async def test_inbox_drops_gate_for_who_voted_and_elides_large_subjects(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """With a quorum of two, a voter's inbox loses the gate while the other approver still sees
    it; a subject too large to list is left out and flagged."""
    definition = {
        "name": "two_votes",
        "steps": [
            {
                "id": "ship",
                "tool": "test.echo",
                "with": {"small": "x", "blob": "y" * 5000},
                "approval": {"approvers": [f"role:{team}"], "quorum": 2},
            }
        ],
    }
    workflow_id = await start_run(definition, {}, who="root")

    async def inbox(who: str) -> list[dict[str, Any]]:
        r = await http.get("/approvals", headers=as_(who))
        assert r.status_code == 200
        return [i for i in r.json()["items"] if i["workflow_id"] == workflow_id]

    (item,) = await eventually(lambda: inbox("alice"), lambda i: len(i) == 1, "gate listed")
    assert item["subject"] is None and item["subject_truncated"] is True
    r = await http.post(
        f"/workflows/{workflow_id}/gates/ship", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200 and r.json()["state"] == "open"
    await eventually(lambda: inbox("alice"), lambda i: i == [], "voter's inbox emptied")
    assert len(await inbox("bob")) == 1


async def test_inbox_pages_through_runs_with_cursors(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """With one run per page the cursors walk every waiting run exactly once; a forged cursor
    names no page (404)."""
    ids = [await start_run() for _ in range(3)]

    async def whole_inbox() -> list[dict[str, Any]]:
        r = await http.get("/approvals", params={"page_size": 500}, headers=as_("alice"))
        assert r.status_code == 200
        assert r.json()["next_cursor"] is None
        return [i for i in r.json()["items"] if i["workflow_id"] in ids]

    await eventually(whole_inbox, lambda i: len(i) == 3, "all three listed")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"page_size": 1, **({"cursor": cursor} if cursor else {})}
        r = await http.get("/approvals", params=params, headers=as_("alice"))
        assert r.status_code == 200
        page = r.json()
        assert len({i["workflow_id"] for i in page["items"]}) <= 1
        seen += [i["workflow_id"] for i in page["items"] if i["workflow_id"] in ids]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 50, "cursors never end"
    assert sorted(seen) == sorted(ids)
    r = await http.get("/approvals", params={"cursor": "AAAA" + "x" * 20}, headers=as_("alice"))
    assert r.status_code == 404 and "cursor" in r.json()["error"]["message"]
    r = await http.get("/approvals", params={"page_size": 0}, headers=as_("alice"))
    assert r.status_code == 422


async def test_status_fallback_matches_the_gates_memo(
    http: httpx.AsyncClient, client: Client, start_run: StartRun, as_: Auth, team: str
) -> None:
    """Runs without a gates memo are listed from their status query; for a run that has both,
    the two sources describe its open gate the same way, votes included."""
    definition = {
        "name": "fallback",
        "steps": [
            {
                "id": "ship",
                "tool": "test.echo",
                "with": {"what": "v1"},
                "approval": {"approvers": [f"role:{team}"], "quorum": 2},
            }
        ],
    }
    workflow_id = await start_run(definition, {}, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    r = await http.post(
        f"/workflows/{workflow_id}/gates/ship", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200 and r.json()["state"] == "open"

    async def from_memo() -> list[GateSummary] | None:
        described = await client.get_workflow_handle(workflow_id).describe()
        return await described.memo_value(MEMO_GATES, None, type_hint=list[GateSummary])

    memo = await eventually(
        from_memo, lambda m: bool(m) and len(m[0].voted) == 1, "memo shows the vote"
    )
    fallback = await gates_from_status(client, workflow_id)
    assert fallback is not None
    pipeline, gates = fallback
    assert pipeline == "fallback"
    assert [g.model_dump() for g in gates] == [g.model_dump() for g in memo or []]
    assert await gates_from_status(client, "no-such-run") is None


async def test_listed_runs_names_only_running_stepgate_runs_among_the_ids(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, client: Client
) -> None:
    """One visibility list stands in for a batch's describes: it names the running Stepgate
    runs among the ids and nothing else: not a workflow of another type, not a closed run, not
    an unknown id, and a quote in an id is a literal, not query syntax."""
    parked, closed = await start_run(), await start_run()
    for workflow_id in (parked, closed):
        await wait_state(http, workflow_id, "waiting", as_("vic"))
    await client.get_workflow_handle(closed).terminate(reason="test")
    foreign = await client.start_workflow(
        "ForeignJob", id=f"foreign-{uuid.uuid4()}", task_queue=f"nobody-{uuid.uuid4()}"
    )
    try:
        run_id = (await client.get_workflow_handle(parked).describe()).run_id
        ids = [parked, closed, foreign.id, "no-such-run", "x' OR WorkflowId != '"]

        async def listed() -> dict[str, str]:
            return await listed_runs(client, ids)

        assert await eventually(listed, lambda r: parked in r and closed not in r, "listed") == {
            parked: run_id
        }
    finally:
        await foreign.terminate(reason="test over")


async def test_decision_for_a_listed_run_that_closed_goes_to_the_run_now_under_its_id(
    http: httpx.AsyncClient,
    start_run: StartRun,
    as_: Auth,
    client: Client,
    team: str,
    api_settings: Settings,
) -> None:
    """Visibility trails: a batch may hold a run id that has closed since it was listed. The
    decision then describes the id, as any decision does, and applies to the Stepgate run now
    under it; were that a workflow of another type, it answers 404 and sends it nothing."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    handle = client.get_workflow_handle(workflow_id)
    desc = await handle.describe()
    stale = desc.run_id
    history = await handle.fetch_history()
    (inp,) = await client.data_converter.decode(
        history.events[0].workflow_execution_started_event_attributes.input.payloads,
        [PipelineInput],
    )
    await handle.terminate(reason="test")
    # The API would not start another request under the id: the same input, straight through.
    await client.start_workflow(
        PipelineWorkflow.run, inp, id=workflow_id, task_queue=desc.task_queue
    )
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    alice = Caller(principal="alice", roles=(team, "viewer"))
    approve = DecisionCreate(action="approve")

    async def decide() -> GateView:
        lanes = RunLanes(per_run=4)
        return await submit(
            client,
            lanes,
            workflow_id,
            "release",
            approve,
            alice,
            channel="batch",
            settings=api_settings,
            listed=stale,
        )

    assert (await decide()).state == "approved"
    await wait_state(http, workflow_id, "completed", as_("vic"))
    foreign = await client.start_workflow(
        "ForeignJob", id=workflow_id, task_queue=f"nobody-{uuid.uuid4()}"
    )
    try:
        with pytest.raises(ApiError) as refused:
            await decide()
        assert refused.value.status == 404
        kinds = {e.event_type for e in (await foreign.fetch_history()).events}
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED not in kinds
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in kinds
    finally:
        await foreign.terminate(reason="test over")
