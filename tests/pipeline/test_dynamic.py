"""Dynamic pipelines on the dev server: for_each with per-item gates, polling and rework loops,
checks, plans made at run time, and a fan-out that outgrows one run's history."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import Settings
from activities.registry import ToolRegistry
from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide, open_gate
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput, Principal
from workflows.pipeline import PipelineWorkflow
from workflows.rules.pages import PageInput


async def test_for_each_opens_a_gate_per_item_and_gathers_outputs_in_order(
    worker: Worker, start: Start
) -> None:
    """Each item has its own gate `<step>.<index>` with its own subject; outputs come back in the
    items' order whatever order they were decided in."""
    handle = await start(
        """
name: files
input: {type: object, properties: {files: {type: array}}}
steps:
  - id: write
    for_each: "${input.files}"
    tool: test.echo
    with: {path: "${item.path}", n: "${index}"}
    approval: {approvers: ["role:ops"], review: "write ${item.path}?", priority: high}
output: "${steps.write.output}"
""",
        {"files": [{"path": "a.py"}, {"path": "b.py"}]},
    )
    second = await open_gate(handle, "write.1")
    first = await open_gate(handle, "write.0")
    assert (second.subject, second.review, second.priority, second.item) == (
        {"path": "b.py", "n": 1},
        "write b.py?",
        "high",
        1,
    )
    assert first.digest != second.digest
    await decide(handle, "write.1", "approve")
    await decide(handle, "write.0", "modify", patch={"path": "a2.py"})
    result = await handle.result()
    assert result.output == [
        {"path": "a2.py", "n": 0, "step": "write.0"},
        {"path": "b.py", "n": 1, "step": "write.1"},
    ]
    # Each item with its gate is on the items page (the status lists items briefly).
    items = (await handle.query(PipelineWorkflow.page, PageInput(of="items", step="write"))).items
    assert [(i.index, i.state, i.gate.state if i.gate else None) for i in items] == [
        (0, "succeeded", "modified"),
        (1, "succeeded", "approved"),
    ]


async def test_repeat_polls_a_job_until_done_with_durable_waits(
    worker: Worker, start: Start
) -> None:
    """A job answering `running` is asked again after each wait until it says `done`; every
    iteration is in the status."""
    handle = await start(
        """
name: poll
steps:
  - id: wait
    tool: test.poll
    with: {done_after: 3, last: "${previous.output.status}"}
    repeat: {until: "output.status == 'done'", every: 100ms, max_iterations: 10}
output: "${steps.wait.output.calls}"
"""
    )
    assert (await handle.result()).output == 3
    step = (await handle.query(PipelineWorkflow.status)).steps[0]
    assert [(i.n, i.until) for i in step.iterations or []] == [(1, False), (2, False), (3, True)]
    timers = [
        e
        for e in (await handle.fetch_history()).events
        if e.timer_started_event_attributes.timer_id
    ]
    assert len(timers) == 2, "one durable wait between each two iterations"


async def test_rework_loop_feeds_the_testers_findings_back_to_the_developer(
    worker: Worker, start: Start, registry: ToolRegistry
) -> None:
    """A developer → tester child pipeline runs again with the tester's findings until the
    tester passes."""
    child = validate_definition(
        yaml.safe_load(
            """
name: rework
input: {type: object, properties: {findings: {type: [string, "null"]}}}
steps:
  - id: develop
    tool: test.echo
    with: {code: "print('hi') # ${input.findings}"}
  - id: test
    needs: [develop]
    tool: test.review
    with: {code: "${steps.develop.output.code}", needs: "add tests"}
output: {passed: "${steps.test.output.passed}", findings: "${steps.test.output.findings}", code: "${steps.develop.output.code}"}
"""
        ),
        registry,
    ).definition
    assert child is not None
    handle = await start(
        """
name: cycle
steps:
  - id: loop
    pipeline: rework
    with: {findings: "${previous.output.findings}"}
    repeat: {until: "output.passed", max_iterations: 4}
output: "${steps.loop.output.code}"
""",
        pipelines={"rework": child},
    )
    assert (await handle.result()).output == "print('hi') # add add tests"
    step = (await handle.query(PipelineWorkflow.status)).steps[0]
    assert [i.until for i in step.iterations or []] == [False, True]


async def test_a_failed_check_fails_the_step_with_its_message(worker: Worker, start: Start) -> None:
    """`check:` over the output fails the step (and the run) with its message."""
    handle = await start(
        """
name: checked
steps:
  - id: build
    tool: test.echo
    with: {code: 2}
    check: {condition: "output.code == 0", message: "the build did not pass"}
"""
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "step 'build' failed: check failed: the build did not pass" in str(info.value.cause)


PLAN = """
name: planned
input: {type: object, properties: {plan: {type: object}}}
steps:
  - id: plan
    tool: test.echo
    with: {def: "${input.plan}"}
  - id: execute
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.def}", allowed_tools: [test.echo], max_steps: 3}
    with: {goal: ship}
    approval: {approvers: ["role:ops"]}
output: "${steps.execute.output}"
"""

GOOD_PLAN = {
    "name": "made",
    "input": {"type": "object", "properties": {"goal": {"type": "string"}}},
    "steps": [{"id": "do", "tool": "test.echo", "with": {"goal": "${input.goal}"}}],
    "output": "${steps.do.output.goal}",
}


async def test_a_plan_made_at_run_time_is_reviewed_and_runs_as_approved(
    worker: Worker, start: Start
) -> None:
    """The plan is checked, the gate shows exactly it (digest-bound, no modify), and the child
    runs the approved snapshot with the step's input."""
    handle = await start(PLAN, {"plan": GOOD_PLAN})
    gate = await open_gate(handle, "execute")
    assert gate.subject["input"] == {"goal": "ship"}
    assert gate.subject["plan"]["steps"][0]["resolved_tool"] == "test.echo@1.0.0"
    assert "modify" not in gate.actions
    await decide(handle, "execute", "approve", digest=gate.digest)
    assert (await handle.result()).output == "ship"
    status = await handle.query(PipelineWorkflow.status)
    assert status.steps[1].plan is not None and status.steps[1].plan["name"] == "made"


INLINE_PLAN = """
name: planned_inline
steps:
  - id: plan
    tool: test.echo
    with:
      def:
        name: made_inline
        input: {type: object, properties: {goal: {type: string}}}
        steps:
          - {id: do, tool: test.echo, with: {goal: "$${input.goal}", by: "${run.requester}"}}
          - {id: say, needs: [do], tool: test.echo, with: {text: "$${steps.do.output.goal} now"}}
        output: {said: "$${steps.say.output.text}", by: "$${steps.do.output.by}"}
  - id: execute
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.def}", allowed_tools: [test.echo], max_steps: 3}
    with: {goal: ship}
    approval: {approvers: ["role:ops"]}
output: "${steps.execute.output}"
"""


async def test_a_plan_written_inline_as_data_keeps_its_own_references(
    worker: Worker, start: Start
) -> None:
    """In a plan written inline as data, `$${...}` is a literal `${...}`: the parent writes it as
    text (only its own `${run.requester}` resolves), and the child resolves it against its own
    input and steps."""
    handle = await start(INLINE_PLAN, requester=Principal(principal="ada"))
    gate = await open_gate(handle, "execute")
    steps = gate.subject["plan"]["steps"]
    assert steps[0]["with"] == {"goal": "${input.goal}", "by": "ada"}
    assert steps[1]["with"] == {"text": "${steps.do.output.goal} now"}
    await decide(handle, "execute", "approve", digest=gate.digest)
    assert (await handle.result()).output == {"said": "ship now", "by": "ada"}


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ({"name": "x"}, "steps: Field required"),
        (
            {**GOOD_PLAN, "steps": [{"id": "do", "tool": "test.fail"}]},
            "steps[0].tool: tool 'test.fail' is not allowed in this plan (allowed: test.echo)",
        ),
        (
            {
                **GOOD_PLAN,
                "secrets": ["K"],
                "steps": [{"id": f"s{i}", "tool": "test.echo"} for i in range(4)],
            },
            "steps: 4 steps, 4 tool calls with their compensations and gate notifications, "
            "more than the 3 this plan may have",
        ),
    ],
)
async def test_an_invalid_plan_fails_its_step_with_every_error(
    worker: Worker, start: Start, plan: dict[str, Any], expected: str
) -> None:
    """A plan that is not a valid definition, uses a tool it may not, or is too long fails the
    step with each problem and its path; no gate opens."""
    handle = await start(PLAN, {"plan": plan})
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    step = (await handle.query(PipelineWorkflow.status)).steps[1]
    assert step.state == "failed" and expected in (step.error or ""), step.error
    assert step.gate is None and step.plan_errors


async def test_a_fan_out_larger_than_one_history_continues_as_new_and_completes(
    small_history_env: WorkflowEnvironment, settings: Settings, registry: ToolRegistry
) -> None:
    """A for_each over more items than one run's history holds continues as new while items are
    under way (holding new starts, waiting for those out) and gathers every output in order."""
    client = small_history_env.client
    local = settings.model_copy(
        update={"temporal_address": client.service_client.config.target_host}
    )
    report = validate_definition(
        yaml.safe_load(
            """
name: many
input: {type: object, properties: {n: {type: array}}}
steps:
  - id: each
    for_each: "${input.n}"
    max_parallel: 4
    tool: test.echo
    with: {v: "${item}"}
output: "${steps.each.output}"
"""
        ),
        registry,
    )
    assert report.definition is not None
    async with build_worker(client, local, registry):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition, input={"n": list(range(60))}),
            id=f"many-{uuid.uuid4().hex[:8]}",
            task_queue=local.stepgate_task_queue,
        )
        result = await handle.result()
        status = await handle.query(PipelineWorkflow.status)
    assert [o["v"] for o in result.output] == list(range(60))
    assert status.continued >= 1


async def test_a_loop_whose_condition_never_holds_continues_as_new_and_ends_at_its_bound(
    small_history_env: WorkflowEnvironment, settings: Settings, registry: ToolRegistry
) -> None:
    """`until: "false"` with only a long timeout: iterations wait the floor interval, the run
    continues as new when its history is long (the loop holds between iterations), and the step
    fails at its iteration bound instead of spinning until history is full."""
    client = small_history_env.client
    local = settings.model_copy(
        update={"temporal_address": client.service_client.config.target_host}
    )
    report = validate_definition(
        yaml.safe_load(
            """
name: spin
steps:
  - id: poll
    tool: test.echo
    with: {n: "${iteration}"}
    repeat: {until: "false", timeout: 365d, max_iterations: 20, every: 10ms}
"""
        ),
        registry,
    )
    assert report.definition is not None
    async with build_worker(client, local, registry):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition, input={}),
            id=f"spin-{uuid.uuid4().hex[:8]}",
            task_queue=local.stepgate_task_queue,
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        status = await handle.query(PipelineWorkflow.status)
    assert "repeat.until did not hold within 20 iterations" in str(err.value.cause)
    assert status.continued >= 1, "the loop's history was carried into a new run"
    (poll,) = status.steps
    assert poll.iterations_total == 20
    assert [i.n for i in poll.iterations or []] == list(range(11, 21)), "the latest ten"


async def test_output_schema_fails_a_step_whose_output_breaks_it(
    worker: Worker, start: Start
) -> None:
    """A tool step's output_schema is checked by its activity: a mismatch fails the step naming
    the path, without a retry."""
    handle = await start(
        """
name: typed
steps:
  - id: make
    tool: test.echo
    with: {items: [{id: 1}, {id: "two"}]}
    retry: {max_attempts: 3, initial_interval: 50ms}
    output_schema:
      type: object
      required: [items]
      properties: {items: {type: array, items: {type: object, properties: {id: {type: integer}}}}}
"""
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    step = (await handle.query(PipelineWorkflow.status)).steps[0]
    assert step.attempts == 1 and "output.items[1].id: 'two' is not of type 'integer'" in (
        step.error or ""
    )
