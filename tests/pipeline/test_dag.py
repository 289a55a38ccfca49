"""The scheduler: DAG order, parallelism, references and conditions."""

from __future__ import annotations

import json

from temporalio.worker import Worker

from tests.pipeline.conftest import Start
from tests.support import fakes
from workflows.pipeline import PipelineWorkflow

DIAMOND = """
name: diamond
input: {type: object, properties: {greeting: {type: string}}}
steps:
  - id: top
    tool: test.echo
    with: {msg: "${input.greeting}"}
  - id: left
    needs: [top]
    tool: test.sleep
    with: {seconds: 1.0}
  - id: right
    needs: [top]
    tool: test.sleep
    with: {seconds: 1.0}
  - id: bottom
    needs: [left, right]
    tool: test.echo
    with: {joined: "${steps.top.output.msg} world", started: "${steps.left.output.start}"}
output:
  message: "${steps.bottom.output.joined}"
"""


async def test_diamond_runs_middle_steps_in_parallel(worker: Worker, start: Start) -> None:
    """The two middle steps of a diamond overlap in time and the bottom sees both outputs."""
    handle = await start(DIAMOND, {"greeting": "hello"})
    result = await handle.result()
    assert result.state == "completed"
    assert result.output == {"message": "hello world"}
    status = await handle.query(PipelineWorkflow.status)
    steps = {s.id: s for s in status.steps}
    assert all(s.state == "succeeded" for s in steps.values())
    left = steps["left"].output_preview
    right = steps["right"].output_preview
    assert left and right
    lspan, rspan = json.loads(left), json.loads(right)
    assert lspan["start"] < rspan["end"] and rspan["start"] < lspan["end"], (lspan, rspan)


async def test_activity_summaries_name_step_and_tool(worker: Worker, start: Start) -> None:
    """Each scheduled activity carries a summary for the Web UI naming its step and pinned tool."""
    handle = await start(DIAMOND, {"greeting": "hi"})
    await handle.result()
    summaries = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            summaries.append(json.loads(event.user_metadata.summary.data))
    assert sorted(summaries) == [
        "bottom: test.echo@1.0.0",
        "left: test.sleep@1.0.0",
        "right: test.sleep@1.0.0",
        "top: test.echo@1.0.0",
    ]


DIAMOND_FLAKY_SAGA = """
name: diamond_saga
steps:
  - id: reserve
    tool: test.ledger
    with: {entry: reserve}
    compensate: {tool: test.ledger, with: {entry: release}}
  - id: charge
    needs: [reserve]
    tool: test.flaky
    with: {fail_times: 2, value: charged}
    retry: {max_attempts: 4, initial_interval: 100ms, backoff: 1.0}
    compensate: {tool: test.ledger, with: {entry: refund}}
  - id: pack
    needs: [reserve]
    tool: test.sleep
    with: {seconds: 0.3}
  - id: ship
    needs: [charge, pack]
    tool: test.echo
    with: {charge: "${steps.charge.output.value}", attempt: "${steps.charge.output.attempt}"}
output: "${steps.ship.output}"
"""


async def test_diamond_with_flaky_step_and_compensation_completes(
    worker: Worker, start: Start
) -> None:
    """A YAML diamond whose middle step is flaky and whose steps declare compensations runs to
    completion; the flaky step is retried and no compensation runs."""
    fakes.LEDGER.clear()
    handle = await start(DIAMOND_FLAKY_SAGA)
    result = await handle.result()
    assert result.state == "completed"
    assert result.output == {"charge": "charged", "attempt": 3, "step": "ship"}
    status = await handle.query(PipelineWorkflow.status)
    assert {s.id: (s.state, s.attempts) for s in status.steps}["charge"] == ("succeeded", 3)
    assert fakes.LEDGER == ["reserve"]  # no release, no refund
    assert all(s.compensation is None for s in status.steps)
