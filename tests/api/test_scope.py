"""Scope and attribution: owned schedules, only Stepgate's workflows, who cancelled and why."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.testing import WorkflowEnvironment

from activities.access import AccessActivities
from activities.config import Settings
from activities.models import AuthorizeCall
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.conftest import FUZZ_NAMESPACE
from tests.test_access import write_keys
from workflows.language.durations import parse_duration
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

Auth = Callable[[str], dict[str, str]]


def hello_schedule(schedule_id: str) -> dict[str, Any]:
    return {
        "schedule_id": schedule_id,
        "definition": "hello",
        "input": {"name": "Ada"},
        "interval": "1h",
    }


async def listed_ids(http: httpx.AsyncClient, as_: Auth) -> set[str]:
    r = await http.get("/schedules", headers=as_("vic"))
    return {i["schedule_id"] for i in r.json()["items"]}


async def test_schedule_records_owner_and_fires_with_origin(
    http: httpx.AsyncClient, as_: Auth, client: Client, api_settings: Settings, team: str
) -> None:
    """A schedule keeps its owner and needs; the run it fires carries them as its origin, and
    the authorize activity answers for them from the keys file as it is at that moment."""
    schedule_id = f"own-{team}"
    r = await http.post("/schedules", json=hello_schedule(schedule_id), headers=as_("olga"))
    assert r.status_code == 201, r.text
    assert r.json()["owner"] == "olga"
    handle = client.get_schedule_handle(schedule_id)
    desc = await handle.describe()
    memo = await desc.memo()
    assert (memo["stepgate_owner"], memo["stepgate_needs"]) == ("olga", ["start", "schedule"])
    await handle.trigger()

    async def fired() -> str | None:
        actions = (await handle.describe()).info.recent_actions
        return getattr(actions[-1].action, "workflow_id", None) if actions else None

    run_id = await eventually(fired, lambda w: w is not None, "schedule fired")
    assert run_id is not None
    history = await client.get_workflow_handle(run_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (inp,) = await client.data_converter.decode(started.input.payloads, [PipelineInput])
    assert inp.origin is not None
    assert (inp.origin.schedule_id, inp.origin.owner) == (schedule_id, "olga")
    call = AuthorizeCall(principal=inp.origin.owner, needs=inp.origin.needs)
    access = AccessActivities(api_settings)
    assert (await access.authorize(call)).allowed
    # The run fired while olga holds her key completes; one fired after it is gone runs nothing.
    assert (await client.get_workflow_handle(run_id).result())["state"] == "completed"
    keys_file = api_settings.stepgate_api_keys_file
    assert keys_file is not None
    entries = yaml.safe_load(keys_file.read_text())
    write_keys(keys_file, [e for e in entries if e["principal"] != "olga"])
    refused = await AccessActivities(api_settings).authorize(call)
    assert not refused.allowed and "no API key" in (refused.reason or "")

    seen = {run_id}

    async def refused_run() -> str | None:
        """Trigger until a run fired after the key's removal was refused. A trigger within the
        same second as an earlier run collides with it (run ids carry the second), and the
        worker rereads the keys file at most once a second: a run it still allowed completes."""
        await handle.trigger()
        latest = await fired()
        if latest is None or latest in seen:
            return None
        seen.add(latest)
        try:
            await client.get_workflow_handle(latest).result()
        except WorkflowFailureError as err:
            assert "'olga' may no longer start this run" in str(err.cause)
            return latest
        return None

    second = await eventually(refused_run, lambda w: w is not None, "a fired run refused")
    assert second is not None
    status = await client.get_workflow_handle(second).query(PipelineWorkflow.status)
    assert {s.state for s in status.steps} == {"skipped"}
    await handle.delete()


async def test_schedule_delete_by_another_operator_forbidden(
    http: httpx.AsyncClient, as_: Auth, team: str
) -> None:
    """Only the owner (with schedule) or a principal with schedule_any deletes a schedule."""
    schedule_id = f"theirs-{team}"
    assert (
        await http.post("/schedules", json=hello_schedule(schedule_id), headers=as_("olga"))
    ).status_code == 201
    r = await http.delete(f"/schedules/{schedule_id}", headers=as_("bob"))
    assert (r.status_code, r.json()["error"]["details"]) == (403, {"missing": ["schedule_any"]})
    assert (await http.delete(f"/schedules/{schedule_id}", headers=as_("root"))).status_code == 200


async def test_schedule_made_outside_stepgate_invisible(
    http: httpx.AsyncClient, as_: Auth, client: Client, api_settings: Settings, team: str
) -> None:
    """A schedule made with the plain Temporal client, although it starts PipelineWorkflow, is
    not listed and cannot be deleted through the API (404), not even by an admin."""
    ours, theirs = f"ours-{team}", f"theirs-{team}"
    inp = PipelineInput.model_validate(
        {"definition": {"name": "x", "steps": [{"id": "a", "tool": "test.echo"}]}}
    )
    action = ScheduleActionStartWorkflow(
        PipelineWorkflow.run, inp, id=f"{theirs}-run", task_queue=api_settings.stepgate_task_queue
    )
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=parse_duration("1h"))])
    foreign = await client.create_schedule(theirs, Schedule(action=action, spec=spec))
    assert (
        await http.post("/schedules", json=hello_schedule(ours), headers=as_("olga"))
    ).status_code == 201
    ids = await eventually(lambda: listed_ids(http, as_), lambda i: ours in i, "ours listed")
    assert theirs not in ids
    r = await http.delete(f"/schedules/{theirs}", headers=as_("root"))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    await foreign.describe()  # still there
    await foreign.delete()
    assert (await http.delete(f"/schedules/{ours}", headers=as_("olga"))).status_code == 200


async def test_lifecycle_on_foreign_workflow_not_found_and_untouched(
    http: httpx.AsyncClient, as_: Auth, client: Client
) -> None:
    """Cancel, pause, resume and decisions on a workflow of another type answer 404 and send
    it nothing: its history holds no signal, update or cancel request."""
    handle = await client.start_workflow(
        "ForeignJob", id=f"foreign-{uuid.uuid4()}", task_queue=f"nobody-{uuid.uuid4()}"
    )
    try:
        for action in ("cancel", "pause", "resume"):
            r = await http.post(
                f"/workflows/{handle.id}/{action}", json={"reason": "x"}, headers=as_("root")
            )
            assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), action
        r = await http.post(
            f"/workflows/{handle.id}/gates/g", json={"action": "approve"}, headers=as_("alice")
        )
        assert r.status_code == 404
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        kinds = {e.event_type for e in (await handle.fetch_history()).events}
        assert kinds.isdisjoint(
            {
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
            }
        ), kinds
    finally:
        await handle.terminate(reason="test over")


async def test_lifecycle_outside_the_configured_namespace_not_found(
    http: httpx.AsyncClient, as_: Auth, temporal_env: WorkflowEnvironment
) -> None:
    """A PipelineWorkflow in another namespace of the same server is out of reach, whatever
    namespace header the request carries."""
    target = temporal_env.client.service_client.config.target_host
    other = await Client.connect(target, namespace=FUZZ_NAMESPACE)
    handle = await other.start_workflow(
        "PipelineWorkflow", id=f"elsewhere-{uuid.uuid4()}", task_queue=f"nobody-{uuid.uuid4()}"
    )
    try:
        r = await http.post(
            f"/workflows/{handle.id}/cancel",
            headers={**as_("root"), "X-Namespace": FUZZ_NAMESPACE},
        )
        assert r.status_code == 404
        kinds = {e.event_type for e in (await handle.fetch_history()).events}
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in kinds
    finally:
        await handle.terminate(reason="test over")


async def test_cancel_reason_and_actor_in_audit(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Cancel through the API records the caller and the reason in the run's audit before the
    run stops; pause records its reason too."""
    workflow_id = await start_run("gated")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    pause = f"/workflows/{workflow_id}/pause"
    r = await http.post(pause, json={"reason": "x" * 2_001}, headers=as_("olga"))
    assert (r.status_code, r.json()["error"]["details"][0]["path"]) == (422, "body.reason")
    r = await http.post(pause, json={"reason": "hold on", "actor": "root"}, headers=as_("olga"))
    assert r.status_code == 422  # the body cannot name an actor
    assert (await http.post(pause, json={"reason": "hold on"}, headers=as_("olga"))).is_success
    r = await http.post(
        f"/workflows/{workflow_id}/cancel", json={"reason": "wrong ref"}, headers=as_("bob")
    )
    assert r.status_code == 202, r.text
    status = await wait_state(http, workflow_id, "cancelled", as_("vic"))
    lifecycle = [
        (a["action"], a["actor"], a["reason"]) for a in status["audit"] if a["kind"] == "lifecycle"
    ]
    assert lifecycle == [("pause", "olga", "hold on"), ("cancel", "bob", "wrong ref")]
