"""Generated definitions: each is either refused with paths or runs to completion, never a crash."""

from __future__ import annotations

import random
import uuid
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from temporalio.client import Client

from activities.config import Settings
from tests.support.fakes import fake_registry
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

REGISTRY = fake_registry()
ids = st.sampled_from(["a", "b", "c", "d", "e", "build", "Bad Id", ""])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=12))
refs = st.sampled_from(
    [
        "${input.x}",
        "${steps.a.output}",
        "${steps.b.status}",
        "${run.workflow_id}",
        "${bogus}",
        "${steps.",
        "x",
    ]
)
steps = st.fixed_dictionaries(
    {"id": ids},
    optional={
        "tool": st.sampled_from(["test.echo", "test.echo@1", "test.echo@9", "nope.tool", 3]),
        "pipeline": st.sampled_from(["child", 5]),
        "needs": st.lists(ids, max_size=3) | scalars,
        "with": st.dictionaries(st.text(max_size=5), refs | scalars, max_size=3) | scalars,
        "if": st.sampled_from(["steps.a.status == 'succeeded'", "input.x >", "x and", "true"])
        | scalars,
        "timeout": st.sampled_from(["1s", "10 parsecs", "", "5m"]) | scalars,
        "retry": st.fixed_dictionaries({}, optional={"max_attempts": st.integers(-1, 3)}) | scalars,
        "approval": st.fixed_dictionaries(
            {}, optional={"approvers": st.lists(st.sampled_from(["role:ops", "ops"]), max_size=2)}
        ),
        "on_error": st.sampled_from(["fail", "continue", "explode"]),
    },
)
definitions = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["gen", "", "bad name"]) | scalars,
        "steps": st.lists(steps, max_size=5) | scalars,
        "input": st.sampled_from([{"type": "object"}, {"type": "nope"}, {"properties": {"x": {}}}]),
        "output": refs | scalars,
        "max_parallel": st.integers(-1, 3),
    },
)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions | scalars | st.lists(scalars))
def test_generated_definition_is_refused_with_paths_or_accepted(raw: Any) -> None:
    """Validation never raises; a refusal names a path (or says the whole is wrong) and a reason."""
    report = validate_definition(raw, REGISTRY)
    if report.valid:
        assert report.definition is not None and report.definition.steps
    else:
        assert report.errors
        for issue in report.errors:
            assert issue.message
            # Only a document that is not a mapping at all gets a message without a path.
            assert issue.path or not isinstance(raw, dict), issue


def valid_dag(seed: int) -> dict[str, Any]:
    """A small valid DAG: steps need earlier ones, some carry conditions, some fail and continue."""
    rng = random.Random(seed)
    out = []
    for i in range(rng.randint(1, 6)):
        needs = rng.sample(range(i), k=min(i, rng.randint(0, 2)))
        step: dict[str, Any] = {
            "id": f"s{i}",
            "tool": "test.echo",
            "needs": [f"s{j}" for j in needs],
        }
        step["with"] = {"v": i, **{f"from{j}": f"${{steps.s{j}.status}}" for j in needs}}
        if needs and rng.random() < 0.5:
            step["if"] = f"steps.s{needs[0]}.status == 'succeeded'"
        if rng.random() < 0.2:
            step.update(tool="test.fail", on_error="continue", **{"with": {}})
        step["allow_skipped_needs"] = rng.random() < 0.5
        out.append(step)
    return {"name": "gen", "steps": out, "max_parallel": rng.choice([None, 1, 2, 3])}


async def test_generated_valid_dags_run_to_a_closed_state(
    client: Client, settings: Settings
) -> None:
    """Valid generated DAGs all finish: every step ends in a terminal state, the run completes."""
    samples = [valid_dag(seed) for seed in range(12)]
    async with build_worker(client, settings, REGISTRY):
        handles = []
        for raw in samples:
            report = validate_definition(raw, REGISTRY)
            assert report.definition is not None, report.errors
            handles.append(
                await client.start_workflow(
                    PipelineWorkflow.run,
                    PipelineInput(definition=report.definition),
                    id=f"gen-{uuid.uuid4()}",
                    task_queue=settings.stepgate_task_queue,
                )
            )
        for handle, raw in zip(handles, samples, strict=True):
            result = await handle.result()
            assert result.state == "completed", raw
            assert set(result.steps.values()) <= {"succeeded", "failed", "skipped"}, result.steps
            assert len(result.steps) == len(raw["steps"])
