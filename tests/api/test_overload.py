"""Decisions under load: a storm on one gate loses no valid vote and gives every invalid one its 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.config import Settings
from activities.registry import ToolRegistry
from api import decisions
from api.decisions import rpc_failure
from tests.api.conftest import Serve, StartRun
from tests.api.helpers import wait_state
from tests.support import storm
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import Decision, PipelineInput
from workflows.pipeline import PipelineWorkflow

Auth = Callable[[str], dict[str, str]]
VOTERS = [f"voter-{i:02d}" for i in range(50)]
OUTSIDERS = [f"outsider-{i}" for i in range(10)]


@pytest.fixture
def keys(keys: dict[str, str], tmp_path: Path, team: str) -> dict[str, str]:
    """The suite's keys plus 50 voters and 10 outsiders, all holding the test's team role."""
    path = tmp_path / "keys.yaml"
    entries = yaml.safe_load(path.read_text())
    added = {who: f"key-{who}-0123456789" for who in (*VOTERS, *OUTSIDERS)}
    entries += [{"key": k, "principal": p, "roles": [team]} for p, k in added.items()]
    path.write_text(yaml.safe_dump(entries))
    return {**keys, **added}


def snapshot(raw: dict[str, Any], registry: ToolRegistry) -> PipelineInput:
    report = validate_definition(raw, registry)
    assert report.definition is not None, report.errors
    return PipelineInput(definition=report.definition)


async def open_gate(http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str) -> str:
    """A run waiting at a gate the voters decide, with a quorum above them so it stays open."""
    workflow_id = await start_run(storm.definition(team, quorum=len(VOTERS) + 10), who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    return workflow_id


async def open_gates(
    http: httpx.AsyncClient, workflow_id: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    """The run's open gates with every vote (the status lists each gate's latest ten)."""
    r = await http.get(f"/workflows/{workflow_id}/gates", params={"state": "open"}, headers=headers)
    assert r.status_code == 200, r.text
    gates: list[dict[str, Any]] = r.json()["entries"]
    return gates


async def storm_result(
    urls: list[str], http: httpx.AsyncClient, workflow_id: str, keys: dict[str, str], as_: Auth
) -> dict[str, Any]:
    """Fire the storm (requests spread over `urls`, one per API replica) and tally it."""
    plan = storm.shots(workflow_id, VOTERS, OUTSIDERS, "vic", invalid=100)
    limits = httpx.Limits(max_connections=len(plan))
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=u, timeout=60, limits=limits)
            )
            for u in urls
        ]
        answers = await storm.fire(replicas, plan, keys)
    (gate,) = await open_gates(http, workflow_id, as_("vic"))
    return storm.tally(answers, [v["actor"] for v in gate["approvals"]], VOTERS)


async def test_decision_storm_applies_each_vote_once_and_refuses_the_rest(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, keys: dict[str, str], team: str
) -> None:
    """200 concurrent decisions on one gate: each of 50 voters' votes applied exactly once (its
    twin 409 already_voted), each of 100 invalid ones refused with its 4xx, no 5xx."""
    workflow_id = await open_gate(http, start_run, as_, team)
    result = await storm_result([str(http.base_url)], http, workflow_id, keys, as_)
    assert result["server_errors"] == 0, result
    assert result["valid_applied_once"] == len(VOTERS), result
    assert result["invalid_refused"] == result["invalid"] == 100, result
    assert result["ok"], result


async def test_decision_storm_over_two_replicas_past_server_limit_loses_nothing(
    http: httpx.AsyncClient,
    serve: Serve,
    api_settings: Settings,
    start_run: StartRun,
    as_: Auth,
    keys: dict[str, str],
    team: str,
) -> None:
    """Two API replicas each sending 16 decisions to the run at once overrun Temporal's limit of
    10 updates in flight: the refused ones are retried under their update id until applied."""
    workflow_id = await open_gate(http, start_run, as_, team)
    greedy = api_settings.model_copy(update={"stepgate_updates_per_run": 8})
    async with serve(greedy) as one, serve(greedy) as two:
        result = await storm_result([one, two], http, workflow_id, keys, as_)
    assert result["server_errors"] == 0, result
    assert result["valid_applied_once"] == len(VOTERS), result
    assert result["invalid_refused"] == result["invalid"] == 100, result
    assert result["ok"], result


async def test_batch_storm_applies_each_vote_once(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, keys: dict[str, str], team: str
) -> None:
    """Every voter at once sends a batch holding its vote twice and an invalid item: batches go
    through the same lanes, so each vote counts once and every other item is refused."""
    workflow_id = await open_gate(http, start_run, as_, team)
    items = [
        {"workflow_id": workflow_id, "gate": storm.GATE, "action": "approve"},
        {"workflow_id": workflow_id, "gate": storm.GATE, "action": "approve"},
        {"workflow_id": workflow_id, "gate": storm.GATE, "action": "retry"},
    ]
    limits = httpx.Limits(max_connections=len(VOTERS))
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=60, limits=limits) as c:
        answers = await asyncio.gather(
            *(c.post("/approvals/batch", json={"items": items}, headers=as_(v)) for v in VOTERS)
        )
    assert {r.status_code for r in answers} == {200}
    for r in answers:
        got = [(x["status_code"], (x["error"] or {}).get("code")) for x in r.json()["results"]]
        assert got == [(200, None), storm.ALREADY_VOTED, (422, "action_not_allowed")], got
    (gate,) = await open_gates(http, workflow_id, as_("vic"))
    assert sorted(v["actor"] for v in gate["approvals"]) == VOTERS


async def test_decision_repeated_under_its_update_id_counts_once(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, client: Client, team: str
) -> None:
    """What a retry relies on: an update sent again under the id of one already applied returns
    that first outcome instead of a second vote or a 409 already_voted."""
    workflow_id = await open_gate(http, start_run, as_, team)
    handle = client.get_workflow_handle(workflow_id)
    vote = Decision(gate=storm.GATE, action="approve", actor="voter-00", roles=[team])
    first = await handle.execute_update(PipelineWorkflow.submit_decision, vote, id="vote-1")
    again = await handle.execute_update(PipelineWorkflow.submit_decision, vote, id="vote-1")
    assert again == first
    assert [v.actor for v in again.approvals] == ["voter-00"]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(PipelineWorkflow.submit_decision, vote, id="vote-2")
    assert getattr(refused.value.cause, "type", None) == "already_voted"


def test_decision_failed_by_temporal_is_503_with_retry_after_not_502() -> None:
    """A failure of Temporal's own that the API would otherwise pass on as 502 reaches a decider
    as 503 with Retry-After; a missing run stays a 404."""
    err = rpc_failure(RPCError("boom", RPCStatusCode.INTERNAL, b""), "run-1")
    assert (err.status, err.code) == (503, "temporal_error")
    assert err.headers and int(err.headers["Retry-After"]) >= 1
    missing = rpc_failure(RPCError("gone", RPCStatusCode.NOT_FOUND, b""), "run-1")
    assert missing.status == 404


def test_decision_aborted_by_the_run_closing_is_409_run_closed() -> None:
    """A decision that reached a run in the workflow task that completed it is told the run has
    closed (409), not that there is no such run."""
    closing = RPCError(
        "workflow update was aborted by closing workflow", RPCStatusCode.NOT_FOUND, b""
    )
    err = rpc_failure(closing, "run-1")
    assert (err.status, err.code) == (409, "run_closed")


async def test_batch_item_not_applied_in_time_reports_its_own_503(
    http: httpx.AsyncClient,
    start_run: StartRun,
    as_: Auth,
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    team: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a batch, an item for a run whose workers are gone answers 503 on its own while the
    other items keep their results; a batch of only such items is a 503 with Retry-After."""
    # Each orphan item waits out the decision timeout, twice here: 3 s instead of 10 says the same.
    monkeypatch.setattr(decisions, "DECISION_TIMEOUT", timedelta(seconds=3))
    live = await open_gate(http, start_run, as_, team)
    queue = f"gone-{uuid.uuid4()}"
    settings = api_settings.model_copy(update={"stepgate_task_queue": queue})
    async with build_worker(client, settings, registry):
        orphan = await client.start_workflow(
            PipelineWorkflow.run,
            snapshot(storm.definition(team, quorum=2), registry),
            id=f"orphan-{uuid.uuid4()}",
            task_queue=queue,
        )
        await wait_state(http, orphan.id, "waiting", as_("vic"))
    vote = {"gate": storm.GATE, "action": "approve"}
    items = [{"workflow_id": orphan.id, **vote}, {"workflow_id": live, **vote}]
    r = await http.post("/approvals/batch", json={"items": items}, headers=as_("alice"))
    assert r.status_code == 200, r.text
    got = [(x["status_code"], (x["error"] or {}).get("code")) for x in r.json()["results"]]
    assert got == [(503, "worker_unavailable"), (200, None)]
    r = await http.post("/approvals/batch", json={"items": items[:1]}, headers=as_("bob"))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "worker_unavailable"
    assert int(r.headers["Retry-After"]) >= 1
