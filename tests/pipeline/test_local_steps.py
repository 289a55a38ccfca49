"""Local activities: quick pure tools run inside the workflow task, without the server round
trips of a regular activity, and fail the same way a regular step does."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from activities.registry import ToolRegistry
from activities.tools.flow import flow_fail
from activities.tools.transform import data_echo, data_transform
from tests.pipeline.conftest import Start
from tests.support.fakes import FAKE_TOOLS
from workflows.pipeline import PipelineWorkflow


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([*FAKE_TOOLS, data_echo, data_transform, flow_fail])


def scheduled(events: list[object]) -> list[str]:
    """The activity types scheduled as regular activities, in order."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name  # type: ignore[attr-defined]
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED  # type: ignore[attr-defined]
    ]


def markers(events: list[object]) -> int:
    return sum(
        e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED  # type: ignore[attr-defined]
        for e in events
    )


async def test_a_local_tool_runs_as_a_local_activity_and_a_regular_one_does_not(
    worker: Worker, start: Start
) -> None:
    """data.echo and data.transform run locally (a marker in the history, no scheduled task);
    the fake test.echo and a step that says `local: false` go through the server."""
    handle = await start(
        """
name: local
steps:
  - id: constant
    tool: data.echo
    with: {value: {items: [1, 2, 3]}}
  - id: shape
    needs: [constant]
    tool: data.transform
    with: {data: "${steps.constant.output.value}", expression: "length(items)"}
  - id: remote
    needs: [shape]
    tool: data.echo
    local: false
    with: {value: "${steps.shape.output.result}"}
  - id: fake
    needs: [remote]
    tool: test.echo
    with: {n: "${steps.remote.output.value}"}
output: "${steps.fake.output.n}"
"""
    )
    assert (await handle.result()).output == 3
    events = list((await handle.fetch_history()).events)
    names = scheduled(events)
    assert names.count("data.echo") == 1, names
    assert "data.transform" not in names, names
    assert "test.echo" in names, names
    assert markers(events) >= 2, "each local call is recorded as a marker"
    status = await handle.query(PipelineWorkflow.status)
    assert {s.id: s.state for s in status.steps} == dict.fromkeys(
        ("constant", "shape", "remote", "fake"), "succeeded"
    )


async def test_a_failing_local_step_fails_the_run_with_its_own_message(
    worker: Worker, start: Start
) -> None:
    """flow.fail runs locally; its message and the step that failed reach the run's failure,
    exactly as a regular activity's would."""
    handle = await start(
        """
name: local-fail
steps:
  - id: first
    tool: data.echo
    with: {value: 1}
  - id: stop
    needs: [first]
    tool: flow.fail
    with: {message: "the ledger does not balance"}
"""
    )
    with pytest.raises(WorkflowFailureError) as err:
        await handle.result()
    assert "the ledger does not balance" in str(err.value.cause)
    status = await handle.query(PipelineWorkflow.status)
    stop = next(s for s in status.steps if s.id == "stop")
    assert stop.state == "failed" and "the ledger does not balance" in (stop.error or "")
    assert not any(
        n.startswith("stepgate.tool.flow.fail")
        for n in scheduled(list((await handle.fetch_history()).events))
    )


async def test_a_local_step_that_continues_on_error_lets_the_run_finish(
    worker: Worker, start: Start
) -> None:
    """`on_error: continue` treats a local failure like a regular one: the run completes."""
    handle = await start(
        """
name: local-continue
steps:
  - id: stop
    tool: flow.fail
    on_error: continue
    with: {message: "optional check failed"}
  - id: after
    tool: data.echo
    with: {value: done}
output: {stop: "${steps.stop.status}", after: "${steps.after.output.value}"}
"""
    )
    result = await handle.result()
    assert result.state == "completed"
    assert result.output == {"stop": "failed", "after": "done"}
