"""The core rules end to end on the dev server: no hang, votes by quorum, patches checked when
sent, honest step states, child runs, compensation and notifications."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.registry import ToolRegistry
from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide, open_gate
from tests.support.util import eventually
from workflows.language.definition import Definition
from workflows.language.validation import validate_definition
from workflows.pipeline import PipelineWorkflow


async def test_steps_listed_against_their_order_with_a_skipped_start_complete(
    worker: Worker, start: Start
) -> None:
    """c needs b needs a, a is skipped, listed c, b, a: the run completes with all three skipped."""
    handle = await start(
        """
name: hang
steps:
  - {id: c, tool: test.echo, needs: [b]}
  - {id: b, tool: test.echo, needs: [a]}
  - {id: a, tool: test.echo, if: "false"}
"""
    )
    result = await handle.result()
    assert result.state == "completed"
    assert result.steps == {"c": "skipped", "b": "skipped", "a": "skipped"}


QUORUM = """
name: quorum
steps:
  - id: pay
    tool: test.echo
    with: {amount: 10}
    approval: {stage: before, approvers: ["role:ops"], quorum: 2, rejections_to_reject: 3}
"""


@pytest.mark.parametrize(
    "action,patch", [("modify", {"amount": 99}), ("modify", {}), ("skip", None)]
)
async def test_one_vote_does_not_pass_a_quorum_two_gate(
    worker: Worker, start: Start, action: str, patch: Any
) -> None:
    """One modify (an empty one is refused outright) or one skip leaves a quorum-2 gate open and
    the tool not called."""
    handle = await start(QUORUM)
    await open_gate(handle, "pay")
    if patch == {}:
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await decide(handle, "pay", action, patch=patch)
        assert (
            isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "bad_patch"
        )
        await decide(handle, "pay", "approve")
    else:
        view = await decide(handle, "pay", action, patch=patch)
        assert view.state == "open" and len(view.approvals) == 1
    status = await handle.query(PipelineWorkflow.status)
    assert status.state == "waiting" and status.steps[0].state == "waiting"
    assert status.steps[0].attempts == 0
    await decide(handle, "pay", "approve" if action == "modify" else "skip", actor="bob")
    result = await handle.result()
    if action == "skip":
        assert result.steps == {"pay": "skipped"}
    else:
        assert result.steps == {"pay": "succeeded"}


async def test_one_cancel_does_not_override_rejections_to_reject(
    worker: Worker, start: Start
) -> None:
    """With rejections_to_reject 3, a cancel and a reject leave the gate open; a third stop ends
    the run, and reject wins the tie-break only when most chose it."""
    handle = await start(QUORUM)
    await open_gate(handle, "pay")
    await decide(handle, "pay", "cancel", actor="alice")
    view = await decide(handle, "pay", "reject", actor="bob")
    assert view.state == "open" and [v.action for v in view.rejections] == ["cancel", "reject"]
    await decide(handle, "pay", "cancel", actor="carol")
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "cancelled at a gate by alice, bob, carol" in str(info.value.cause)
    assert (await handle.query(PipelineWorkflow.status)).state == "cancelled"


PATCHABLE = """
name: typed
steps:
  - id: wait
    tool: test.sleep
    with: {seconds: 0.01}
    approval: {stage: before, approvers: ["role:ops"]}
"""


async def test_a_patch_that_breaks_the_tool_input_is_refused_when_sent(
    worker: Worker, start: Start
) -> None:
    """A modify whose patched inputs the tool would reject is refused with the field named, by
    the update and by the signal alike; the gate stays open and the run finishes once fixed."""
    handle = await start(PATCHABLE)
    await open_gate(handle, "wait")
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decide(handle, "wait", "modify", patch={"seconds": "soon"})
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "bad_patch"
    assert "patched input.seconds: Input should be a valid number" in cause.message
    await handle.signal(
        PipelineWorkflow.decide,
        {
            "gate": "wait",
            "action": "modify",
            "actor": "bob",
            "roles": ["ops"],
            "patch": {"seconds": []},
        },
    )

    async def refused() -> Any:
        status = await handle.query(PipelineWorkflow.status)
        return [a for a in status.audit if a.outcome == "refused"]

    entries = await eventually(refused, what="the signal's refusal")
    assert entries[0].actor == "bob" and "bad_patch" in (entries[0].reason or "")
    assert (await handle.query(PipelineWorkflow.status)).open_gates[0].state == "open"
    await decide(handle, "wait", "modify", patch={"seconds": 0.02})
    assert (await handle.result()).state == "completed"


async def test_failed_steps_report_their_attempts_and_unreached_steps_end(
    worker: Worker, start: Start
) -> None:
    """A step that ran out of retries shows every attempt; steps the run never reached end
    skipped with the reason, none stays pending."""
    handle = await start(
        """
name: attempts
steps:
  - id: flaky
    tool: test.flaky
    with: {fail_times: 9}
    retry: {max_attempts: 3, initial_interval: 50ms, backoff: 1.0}
  - {id: final, tool: test.fail, on_error: continue}
  - {id: later, tool: test.echo, needs: [flaky]}
"""
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    by_id = {s.id: s for s in status.steps}
    assert (by_id["flaky"].state, by_id["flaky"].attempts) == ("failed", 3)
    assert (by_id["final"].state, by_id["final"].attempts) == ("failed", 1)
    assert (by_id["later"].state, by_id["later"].reason) == (
        "skipped",
        "not reached: the run failed",
    )


def _child(registry: ToolRegistry, version: int, gated: bool = False) -> Definition:
    gate = "    approval: {approvers: ['role:ops']}\n" if gated else ""
    text = f"""
name: child
version: {version}
input: {{type: object, required: [x], properties: {{x: {{type: integer}}}}}}
steps:
  - id: inner
    tool: test.echo
    with: {{v: {version}, x: "${{input.x}}"}}
{gate}output: "${{steps.inner.output}}"
"""
    d = validate_definition(yaml.safe_load(text), registry).definition
    assert d is not None
    return d


async def test_a_pinned_child_version_runs_that_version(
    worker: Worker, start: Start, registry: ToolRegistry
) -> None:
    """`pipeline: child@1` runs the v1 snapshot even when a newer one is in the snapshot too."""
    handle = await start(
        "name: parent\nsteps: [{id: old, pipeline: child@1, with: {x: 1}}, {id: new, pipeline: child, with: {x: 2}}]\n"
        "output: {old: '${steps.old.output.v}', new: '${steps.new.output.v}'}",
        pipelines={"child@1": _child(registry, 1), "child": _child(registry, 2)},
    )
    assert (await handle.result()).output == {"old": 1, "new": 2}


async def test_a_waiting_child_shows_its_gates_on_the_parent(
    worker: Worker, start: Start, registry: ToolRegistry, client: Any
) -> None:
    """While a child run waits at a gate, the parent is waiting and lists that gate with the
    child's workflow id; deciding it on the child lets both finish."""
    handle = await start(
        "name: parent\nsteps: [{id: sub, pipeline: child, with: {x: 3}}]\noutput: '${steps.sub.output.x}'",
        pipelines={"child": _child(registry, 1, gated=True)},
    )

    async def parent_waits() -> Any:
        status = await handle.query(PipelineWorkflow.status)
        return status if status.state == "waiting" and status.open_gates else None

    status = await eventually(parent_waits, what="the parent waiting on its child")
    gate = status.open_gates[0]
    assert (gate.gate, gate.workflow_id) == ("inner", f"{handle.id}--sub")
    assert status.steps[0].state == "running"
    with pytest.raises(WorkflowUpdateFailedError):
        await decide(handle, "inner", "approve")
    await decide(client.get_workflow_handle(gate.workflow_id), "inner", "approve")
    assert (await handle.result()).output == 3
    assert (await handle.query(PipelineWorkflow.status)).open_gates == []


async def test_child_input_is_checked_outside_workflow_code(
    worker: Worker, start: Start, registry: ToolRegistry
) -> None:
    """A child's input is checked against its schema by an activity: the history shows the check,
    and the step fails naming the field."""
    handle = await start(
        "name: parent\nsteps: [{id: sub, pipeline: child, with: {x: nope}}]",
        pipelines={"child": _child(registry, 1)},
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert "input.x: 'nope' is not of type 'integer'" in (status.steps[0].error or "")
    history = await handle.fetch_history()
    markers = [
        e
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert markers, "the check ran as a local activity"


async def test_failed_compensations_are_named_in_the_run_failure(
    worker: Worker, start: Start
) -> None:
    """When undoing a step fails too, the run's failure says so next to the first failure."""
    handle = await start(
        """
name: saga
steps:
  - {id: book, tool: test.echo, compensate: {tool: test.fail, with: {message: undo refused}, retry: {max_attempts: 1}}}
  - {id: pay, tool: test.fail, needs: [book], with: {message: card declined}}
"""
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    message = str(info.value.cause)
    assert "step 'pay' failed: card declined" in message
    assert "compensation of step 'book' failed: undo refused" in message


async def test_gate_notifications_finish_before_the_run_returns(
    worker: Worker, start: Start
) -> None:
    """A notification sent when a gate opens completes before the run does, even when the gate
    is decided at once."""
    handle = await start(
        """
name: told
steps:
  - id: ship
    tool: test.echo
    approval:
      approvers: ["role:ops"]
      notify: {tool: test.sleep, with: {seconds: 0.5}}
"""
    )
    await open_gate(handle, "ship")
    await decide(handle, "ship", "approve")
    await handle.result()
    events = (await handle.fetch_history()).events
    kinds = [e.event_type for e in events]
    done = [
        i
        for i, e in enumerate(events)
        if e.activity_task_completed_event_attributes.scheduled_event_id
    ]
    assert len(done) == 2 and max(done) < len(kinds) - 1
