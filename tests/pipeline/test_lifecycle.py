"""Run lifecycle: compensation, cancellation, pause and resume, child pipelines."""

from __future__ import annotations

import gc
import sys

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from activities.config import Settings
from activities.registry import ToolRegistry
from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide, open_gate
from tests.support import fakes
from tests.support.util import eventually
from worker import build_worker
from workflows.pipeline import PipelineWorkflow

SAGA = """
name: saga
steps:
  - id: reserve
    tool: test.ledger
    with: {entry: "reserve"}
    compensate: {tool: test.ledger, with: {entry: "reserve:${steps.reserve.output.entries.0}"}}
  - id: charge
    needs: [reserve]
    tool: test.ledger
    with: {entry: "charge"}
    compensate: {tool: test.ledger, with: {entry: "charge"}}
  - id: notify
    needs: [reserve]
    tool: test.ledger
    with: {entry: "notify"}
  - id: ship
    needs: [charge, notify]
    tool: %s
"""


async def test_failure_compensates_succeeded_steps_in_reverse_order(
    worker: Worker, start: Start
) -> None:
    """When a step fails, earlier steps' compensations run newest first and are recorded."""
    fakes.LEDGER.clear()
    handle = await start(SAGA % "test.fail")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    undo = [e for e in fakes.LEDGER if e.startswith("undo:")]
    assert undo == ["undo:charge", "undo:reserve:reserve"]
    status = await handle.query(PipelineWorkflow.status)
    by_id = {s.id: s for s in status.steps}
    assert by_id["reserve"].state == "compensated" and by_id["charge"].state == "compensated"
    assert by_id["notify"].state == "succeeded"  # nothing to undo
    assert by_id["ship"].state == "failed"
    assert by_id["charge"].compensation and by_id["charge"].compensation.state == "succeeded"


async def test_cancel_stops_running_step_then_compensates(worker: Worker, start: Start) -> None:
    """Cancelling a run cancels the running activity and compensates what had succeeded."""
    fakes.LEDGER.clear()
    handle = await start(
        """
name: cancel_me
steps:
  - id: first
    tool: test.ledger
    with: {entry: "first"}
    compensate: {tool: test.ledger, with: {entry: "first"}}
  - id: slow
    needs: [first]
    tool: test.sleep
    with: {seconds: 60}
    heartbeat_timeout: 1s
"""
    )

    async def slow_running() -> bool:
        status = await handle.query(PipelineWorkflow.status)
        return status.steps[1].state == "running"

    await eventually(slow_running, what="slow step running")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert status.state == "cancelled"
    assert [s.state for s in status.steps] == ["compensated", "cancelled"]
    assert fakes.LEDGER == ["first", "undo:first"]


async def test_pause_holds_new_steps_until_resume(worker: Worker, start: Start) -> None:
    """While paused the running step finishes but no new step starts; resume continues the run."""
    handle = await start(
        """
name: pausable
steps:
  - id: one
    tool: test.sleep
    with: {seconds: 0.5}
  - id: two
    needs: [one]
    tool: test.echo
"""
    )

    async def one_running() -> bool:
        s = await handle.query(PipelineWorkflow.status)
        return s.steps[0].state == "running"

    await eventually(one_running, what="step one running")
    await handle.signal(PipelineWorkflow.pause, {"actor": "ops"})

    async def one_done_two_pending() -> bool:
        s = await handle.query(PipelineWorkflow.status)
        return s.state == "paused" and [x.state for x in s.steps] == ["succeeded", "pending"]

    await eventually(one_done_two_pending, what="paused after step one")
    await handle.signal(PipelineWorkflow.resume)
    result = await handle.result()
    assert result.steps == {"one": "succeeded", "two": "succeeded"}
    status = await handle.query(PipelineWorkflow.status)
    assert [a.action for a in status.audit if a.kind == "lifecycle"] == ["pause", "resume"]


async def test_child_pipeline_output_flows_to_parent(
    worker: Worker, start: Start, registry: object
) -> None:
    """A `pipeline:` step runs the snapshot of another pipeline as a child and uses its output."""
    import yaml

    from workflows.language.validation import validate_definition

    child = validate_definition(
        yaml.safe_load(
            """
name: child
input: {type: object, properties: {x: {type: integer}}}
steps:
  - id: inner
    tool: test.echo
    with: {doubled: "${input.x}${input.x}"}
output: {value: "${steps.inner.output.doubled}"}
"""
        ),
        registry,  # type: ignore[arg-type]
    ).definition
    assert child is not None
    handle = await start(
        """
name: parent
steps:
  - id: sub
    pipeline: child
    with: {x: 4}
  - id: use
    needs: [sub]
    tool: test.echo
    with: {got: "${steps.sub.output.value}"}
output: "${steps.use.output.got}"
""",
        pipelines={"child": child},
    )
    result = await handle.result()
    assert result.output == "44"


async def test_child_pipeline_input_is_checked_against_its_schema(
    worker: Worker, start: Start, registry: object
) -> None:
    """A `pipeline:` step whose input breaks the child's schema fails with each problem named,
    before any child run starts."""
    import yaml

    from workflows.language.validation import validate_definition

    child = validate_definition(
        yaml.safe_load(
            """
name: child
input: {type: object, required: [x], properties: {x: {type: integer}}}
steps: [{id: inner, tool: test.echo}]
"""
        ),
        registry,  # type: ignore[arg-type]
    ).definition
    assert child is not None
    handle = await start(
        "name: parent\nsteps: [{id: sub, pipeline: child, with: {x: nope}}]",
        pipelines={"child": child},
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert status.steps[0].state == "failed"
    assert "input.x: 'nope' is not of type 'integer'" in (status.steps[0].error or "")


PARKED = """
name: parked
steps:
  - id: ship
    tool: test.echo
    with: {msg: hi}
    approval: {approvers: ["role:ops"]}
"""


async def test_worker_stopped_with_runs_parked_leaves_quietly(
    client: Client, settings: Settings, registry: ToolRegistry, start: Start
) -> None:
    """A worker stopped while runs wait at a gate drops their coroutines; closing them must
    await nothing, or Python reports 'coroutine ignored GeneratorExit' for each run. The runs
    then finish on the next worker, from their histories."""
    reported: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: reported.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        async with build_worker(client, settings, registry):
            handles = [await start(PARKED) for _ in range(3)]
            for handle in handles:
                await open_gate(handle, "ship")
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert [r for r in reported if "GeneratorExit" in r] == []
    async with build_worker(client, settings, registry):
        for handle in handles:
            await decide(handle, "ship", "approve")
            assert (await handle.result()).state == "completed"
