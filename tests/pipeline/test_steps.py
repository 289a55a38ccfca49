"""Step semantics: references, conditions, retries, failure handling and large outputs."""

from __future__ import annotations

import json

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from tests.pipeline.conftest import Start
from workflows.pipeline import PipelineWorkflow


def states(status: object) -> dict[str, str]:
    return {s.id: s.state for s in status.steps}  # type: ignore[attr-defined]


async def test_references_keep_types_and_format_inside_strings(
    worker: Worker, start: Start
) -> None:
    """A whole-string reference keeps its JSON type; an embedded one is formatted as text."""
    handle = await start(
        """
name: refs
input: {type: object, properties: {n: {type: integer}, tags: {type: array}}}
steps:
  - id: a
    tool: test.echo
    with: {count: "${input.n}", tags: "${input.tags}", label: "n=${input.n} tags=${input.tags}",
           wf: "${run.workflow_id}"}
  - id: b
    needs: [a]
    tool: test.echo
    with: {first: "${steps.a.output.tags.0}", status: "${steps.a.status}"}
output: {a: "${steps.a.output}", b: "${steps.b.output}"}
""",
        {"n": 3, "tags": ["x", "y"]},
    )
    result = await handle.result()
    a, b = result.output["a"], result.output["b"]
    assert a["count"] == 3 and a["tags"] == ["x", "y"]
    assert a["label"] == 'n=3 tags=["x","y"]'
    assert a["wf"] == handle.id
    assert b["first"] == "x" and b["status"] == "succeeded"


async def test_false_condition_skips_step_and_its_dependents(worker: Worker, start: Start) -> None:
    """A false `if` skips the step; a step needing it is skipped unless it accepts skipped needs."""
    handle = await start(
        """
name: cond
input: {type: object, properties: {env: {type: string}}}
steps:
  - id: check
    tool: test.echo
    with: {risk: 2}
  - id: prod_only
    needs: [check]
    if: "input.env == 'prod' and steps.check.output.risk < 3"
    tool: test.echo
  - id: after_prod
    needs: [prod_only]
    tool: test.echo
  - id: always
    needs: [prod_only]
    allow_skipped_needs: true
    tool: test.echo
  - id: low_risk
    needs: [check]
    if: "steps.check.output.risk in [1, 2] and not (input.env == 'prod')"
    tool: test.echo
""",
        {"env": "dev"},
    )
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert states(status) == {
        "check": "succeeded",
        "prod_only": "skipped",
        "after_prod": "skipped",
        "always": "succeeded",
        "low_risk": "succeeded",
    }
    reasons = {s.id: s.reason for s in status.steps}
    assert "condition false" in (reasons["prod_only"] or "")
    assert "prod_only" in (reasons["after_prod"] or "")


async def test_flaky_step_is_retried_to_success(worker: Worker, start: Start) -> None:
    """A step failing twice with a retryable error succeeds on its third attempt."""
    handle = await start(
        """
name: flaky
steps:
  - id: shaky
    tool: test.flaky
    with: {fail_times: 2, value: ok}
    retry: {max_attempts: 5, initial_interval: 100ms, backoff: 1.0}
"""
    )
    result = await handle.result()
    assert result.state == "completed"
    status = await handle.query(PipelineWorkflow.status)
    step = status.steps[0]
    assert step.state == "succeeded" and step.attempts == 3
    assert json.loads(step.output_preview or "{}")["attempt"] == 3


async def test_retries_exhausted_fail_the_run_with_the_cause(worker: Worker, start: Start) -> None:
    """When retries run out the run fails and the status names the step and the error."""
    handle = await start(
        """
name: exhausted
steps:
  - id: shaky
    tool: test.flaky
    with: {fail_times: 5}
    retry: {max_attempts: 2, initial_interval: 100ms}
  - id: later
    needs: [shaky]
    tool: test.echo
"""
    )
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "shaky" in str(info.value.cause)
    status = await handle.query(PipelineWorkflow.status)
    assert status.state == "failed"
    assert states(status)["later"] in ("pending", "cancelled", "skipped")
    assert "flaky failure 2" in (status.steps[0].error or "")
    assert "flaky failure 2" in (status.error or "")


async def test_on_error_continue_lets_the_run_complete(worker: Worker, start: Start) -> None:
    """A failing step with on_error: continue fails alone; independent steps and the run go on."""
    handle = await start(
        """
name: tolerant
steps:
  - id: broken
    tool: test.fail
    with: {message: nope}
    on_error: continue
  - id: fine
    tool: test.echo
  - id: dependent
    needs: [broken]
    tool: test.echo
"""
    )
    result = await handle.result()
    assert result.state == "completed"
    assert result.steps == {"broken": "failed", "fine": "succeeded", "dependent": "skipped"}


async def test_large_output_is_stored_as_artifact_and_still_referenced(
    worker: Worker, start: Start
) -> None:
    """An output over the size limit goes to an artifact; later steps still read its fields."""
    big = "x" * 4000
    handle = await start(
        f"""
name: big
steps:
  - id: produce
    tool: test.echo
    with: {{blob: "{big}", small: 7}}
    max_output_bytes: 1024
  - id: consume
    needs: [produce]
    tool: test.size
    with: {{blob: "${{steps.produce.output.blob}}", small: "${{steps.produce.output.small}}"}}
"""
    )
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    produce, consume = status.steps
    assert produce.artifact is not None and produce.artifact["size"] > 4000
    assert json.loads(consume.output_preview or "{}") == {"sizes": {"blob": 4000}}
    history = await handle.fetch_history()
    assert big not in history.to_json()  # the blob itself never enters history


async def test_omitted_optional_input_reads_as_schema_default(worker: Worker, start: Start) -> None:
    """A declared input left out of the run reads as its schema default, or null without one."""
    handle = await start(
        """
name: defaults
input:
  type: object
  properties: {title: {type: string}, body: {type: string, default: "none"}, n: {type: integer}}
steps:
  - id: a
    tool: test.echo
    with: {text: "${input.title}: ${input.body}", n: "${input.n}"}
output: "${steps.a.output}"
""",
        {"title": "T"},
    )
    result = await handle.result()
    assert result.output == {"text": "T: none", "n": None, "step": "a"}
