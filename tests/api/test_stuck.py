"""Nothing accepted is left stuck: a cancel ends a run that cannot act on it, and definitions a
run could not hold are refused with the bound and the step."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import Client, WorkflowExecutionStatus

from activities.config import Settings
from api import watchdog
from tests.support.util import eventually
from workflows.language.definition import Definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)
SCHEDULED = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
STARTED = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
RUNNING = WorkflowExecutionStatus.RUNNING


@pytest.mark.parametrize(
    ("status", "task", "attempt", "scheduled", "stuck"),
    [
        (WorkflowExecutionStatus.COMPLETED, SCHEDULED, 5, T0, False),
        (RUNNING, None, 0, None, False),
        (RUNNING, STARTED, 1, T0, False),
        (RUNNING, SCHEDULED, 1, T0 + timedelta(seconds=1), False),
        (RUNNING, SCHEDULED, 1, T0, True),
        (RUNNING, STARTED, 2, T0 + GRACE, True),
        (RUNNING, SCHEDULED, 7, T0 + GRACE, True),
    ],
)
def test_a_run_counts_as_stuck_only_when_its_workflow_task_cannot_run(
    status: WorkflowExecutionStatus,
    task: int | None,
    attempt: int,
    scheduled: datetime | None,
    stuck: bool,
) -> None:
    """Stuck: a failing workflow task (an attempt past the first), or one no worker took for
    the whole grace. A closed run, or one whose task is running, winds down by itself."""
    reason = watchdog.stuck_reason(status, task, attempt, scheduled, T0 + GRACE, GRACE)
    assert (reason is not None) is stuck, reason
    if attempt > 1 and stuck:
        assert reason == f"its workflow task has failed {attempt - 1} time(s) in a row"


async def test_cancel_ends_a_run_whose_workflow_task_keeps_failing(
    http: httpx.AsyncClient,
    as_: Callable[[str], dict[str, str]],
    client: Client,
    api_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose every workflow task fails (here: a state it cannot read) never acts on a
    cancel; the API terminates it after the grace, naming who cancelled and why it was stuck."""
    monkeypatch.setattr(watchdog, "CANCEL_GRACE_S", 0.5)
    definition = Definition.model_validate({"name": "x", "steps": [{"id": "a", "tool": "t.x"}]})
    workflow_id = f"stuck-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(definition=definition, resume={"steps": "not a state"}),
        id=workflow_id,
        task_queue=api_settings.stepgate_task_queue,
    )

    async def failing() -> int:
        desc = await handle.describe()
        return int(desc.raw_description.pending_workflow_task.attempt)

    await eventually(failing, ok=lambda n: n > 1, what="the workflow task failing")
    r = await http.post(f"/workflows/{workflow_id}/cancel", json={}, headers=as_("olga"))
    assert r.status_code == 202, r.text

    async def closed() -> WorkflowExecutionStatus | None:
        return (await handle.describe()).status

    final = await eventually(closed, ok=lambda s: s != RUNNING, what="the run ending", within=30)
    assert final == WorkflowExecutionStatus.TERMINATED
    history = await handle.fetch_history()
    terminated = [
        e for e in history.events if e.HasField("workflow_execution_terminated_event_attributes")
    ]
    reason = terminated[0].workflow_execution_terminated_event_attributes.reason
    assert reason.startswith("cancelled by olga, but its workflow task has failed"), reason


async def test_a_definition_a_run_could_not_hold_is_refused_naming_the_step(
    http: httpx.AsyncClient, as_: Callable[[str], dict[str, str]]
) -> None:
    """Three for_each steps of up to 1,000 gated items each are more units than one run keeps:
    refused with 422 at the step that crosses the bound, before anything starts."""
    steps = [
        {
            "id": f"s{i}",
            "tool": "test.echo",
            "for_each": "${input.items}",
            "with": {"n": "${item}"},
            "approval": {"approvers": ["role:ops"]},
        }
        for i in range(3)
    ]
    definition = {"name": "wide", "input": {"type": "object"}, "steps": steps}
    r = await http.post(
        "/workflows", json={"definition": definition, "input": {"items": []}}, headers=as_("root")
    )
    assert r.status_code == 422, r.text
    issues = r.json()["error"]["details"]
    assert [i["path"] for i in issues] == ["definition.steps[2].for_each"], issues
    assert "more than the 3000 it can keep" in issues[0]["message"]
