"""Child runs of a pipeline: a snapshotted catalog pipeline, or an approved plan, run as a child
PipelineWorkflow, its input checked against the child's schema first and its output against the
step's `output_schema`. Workflow code."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.documents import canonical_json
    from activities.models import CheckCall
    from workflows import internal
    from workflows.calls import Caller, failure_message
    from workflows.contract import WORKFLOW_TYPE
    from workflows.language.definition import Definition, StepSpec
    from workflows.models import PipelineResult
    from workflows.rules.state import Result
    from workflows.rules.units import Invoke


async def run_child(caller: Caller, spec: StepSpec, inv: Invoke) -> Result:
    """Run a snapshotted catalog pipeline, or an approved plan, as a child run; a catalog
    child's input is checked against its schema first, its output against `output_schema`."""
    round_ = inv.round
    if inv.plan is not None:
        child = Definition.model_validate(inv.plan)
        ref = f"plan {child.name!r}"
    else:
        ref = spec.pipeline if isinstance(spec.pipeline, str) else ""
        found = caller.inp.pipelines.get(ref) or caller.inp.pipelines.get(ref.partition("@")[0])
        if found is None:
            return Result(
                round=round_, ok=False, error=f"pipeline {ref!r} was not in the run's snapshot"
            )
        child = found
    issues = await internal.check(
        CheckCall(value=inv.args, json_schema=child.input, where="input"), inv.step
    )
    if issues.issues:
        return Result(
            round=round_,
            ok=False,
            error=f"input for pipeline {ref!r} does not match its schema: "
            + "; ".join(issues.issues),
        )
    info = workflow.info()
    try:
        result = await workflow.execute_child_workflow(
            WORKFLOW_TYPE,
            caller.inp.model_copy(
                update={
                    "definition": child,
                    "input": inv.args,
                    "origin": None,
                    "resume": None,
                    "pipelines": {} if inv.plan is not None else caller.inp.pipelines,
                }
            ),
            id=child_id(info.workflow_id, inv.step, round_, inv.iteration),
            task_queue=caller.queue(spec),
            static_summary=f"{child.name} v{child.version} (child of {info.workflow_id})",
            result_type=PipelineResult,
        )
    except ChildWorkflowError as err:
        if is_cancelled_exception(err):
            return Result(round=round_, ok=False, cancelled=True, attempts=0)
        return Result(round=round_, ok=False, error=failure_message(err))
    if spec.output_schema is not None:
        fits = await internal.check(
            CheckCall(value=result.output, json_schema=spec.output_schema, where="output"),
            inv.step,
        )
        if fits.issues:
            return Result(
                round=round_,
                ok=False,
                error="output does not match output_schema: " + "; ".join(fits.issues),
            )
    size = len(canonical_json(result.output))
    return Result(round=round_, ok=True, output=result.output, size=size)


def child_id(workflow_id: str, unit_id: str, round_: int, iteration: int = 0) -> str:
    suffix = (f"-r{round_}" if round_ else "") + (f"-i{iteration}" if iteration else "")
    return f"{workflow_id}--{unit_id}{suffix}"
