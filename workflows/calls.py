"""How PipelineWorkflow reaches the outside world: tool activities, child runs, checks,
notifications, compensation and audit archives. Workflow code (deterministic); the rules of what
to call and when live in the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    RetryState,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        ARCHIVE_AUDIT_ACTIVITY,
        ARTIFACT_MARKER,
        AUTHORIZE_ACTIVITY,
        CHECK_ACTIVITY,
        VALIDATE_PLAN_ACTIVITY,
        AuditChunk,
        AuditChunkStored,
        AuthorizeCall,
        AuthorizeResult,
        CheckCall,
        CheckResult,
        PlanCall,
        PlanResult,
        Slot,
        ToolCall,
        ToolResult,
    )
    from workflows.language.definition import CompensateSpec, Definition, NotifySpec, StepSpec
    from workflows.language.durations import parse_duration
    from workflows.language.limits import LOCAL_TIMEOUT
    from workflows.models import PipelineInput, PipelineResult, StartOrigin
    from workflows.retries import (
        ARCHIVE_RETRY,
        ARCHIVE_TIMEOUT,
        AUTHORIZE_RETRY,
        AUTHORIZE_TIMEOUT,
        CHECK_RETRY,
        CHECK_TIMEOUT,
        COMPENSATE_RETRY,
        COMPENSATE_TIMEOUT,
        NOTIFY_RETRY,
        NOTIFY_TIMEOUT,
        PLAN_TIMEOUT,
        retry_policy,
    )
    from workflows.rules.state import Result
    from workflows.rules.units import CheckPlan, Invoke

WORKFLOW_NAME = "PipelineWorkflow"


def is_child(spec: StepSpec, inv: Invoke) -> bool:
    """Whether the call starts a child pipeline run (a catalog pipeline or a plan) rather than a
    tool."""
    return inv.plan is not None or bool(spec.pipeline)


def in_task(spec: StepSpec, inv: Invoke) -> bool:
    """Whether the call runs inside the workflow task: a tool call as a local activity."""
    return bool(spec.local) and not is_child(spec, inv)


def failure_message(err: BaseException) -> str:
    """The innermost cause's message: what actually went wrong."""
    cause: BaseException | None = err
    message = str(err)
    while cause is not None:
        message = getattr(cause, "message", None) or str(cause) or message
        cause = cause.__cause__
    return message


def attempts_of(err: ActivityError | ApplicationError, policy: RetryPolicy) -> int:
    """How many attempts a failed call made: all of them when retries ran out, else what the
    activity reported with its failure (see activities/runtime.py), else at least one."""
    if isinstance(err, ActivityError):
        if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED and policy.maximum_attempts:
            return policy.maximum_attempts
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        for detail in cause.details:
            if isinstance(detail, dict) and isinstance(detail.get("stepgate_attempt"), int):
                return int(detail["stepgate_attempt"])
    return 1


@dataclass(frozen=True)
class Caller:
    """What every call of one run needs: its snapshot and where it runs."""

    inp: PipelineInput

    @property
    def definition(self) -> Definition:
        return self.inp.definition

    def queue(self, spec: StepSpec) -> str:
        return spec.task_queue or self.definition.defaults.task_queue or workflow.info().task_queue

    def tool_call(
        self,
        spec_id: str,
        tool_ref: str,
        args: dict[str, Any],
        slots: list[Slot],
        key: str,
        **kw: Any,
    ) -> tuple[str, ToolCall]:
        info = workflow.info()
        name, _, version = tool_ref.partition("@")
        return name, ToolCall(
            tool=name,
            version=version,
            step_id=spec_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            args=args,
            slots=slots,
            idempotency_key=key,
            **kw,
        )

    async def tool(self, spec: StepSpec, inv: Invoke) -> Result:
        defaults = self.definition.defaults
        tool_ref = spec.resolved_tool or spec.tool or ""
        key = f"{workflow.info().workflow_id}/{inv.step}"
        key += (f"/r{inv.round}" if inv.round else "") + (
            f"/i{inv.iteration}" if inv.iteration else ""
        )
        name, call = self.tool_call(
            inv.step,
            tool_ref,
            inv.args,
            inv.slots,
            key,
            max_output_bytes=spec.max_output_bytes,
            output_schema=spec.output_schema,
        )
        policy = retry_policy(spec.retry, defaults)
        heartbeat = spec.heartbeat_timeout or defaults.heartbeat_timeout
        round_ = inv.round
        try:
            if spec.local:
                # Inside the workflow task: no server round trips, retries kept local.
                res = await workflow.execute_local_activity(
                    name,
                    call,
                    result_type=ToolResult,
                    start_to_close_timeout=parse_duration(spec.timeout)
                    if spec.timeout
                    else LOCAL_TIMEOUT,
                    schedule_to_close_timeout=parse_duration(spec.total_timeout)
                    if spec.total_timeout
                    else None,
                    retry_policy=policy,
                    summary=f"{inv.step}: {tool_ref} (local)",
                )
            else:
                res = await workflow.execute_activity(
                    name,
                    call,
                    result_type=ToolResult,
                    task_queue=self.queue(spec),
                    start_to_close_timeout=parse_duration(spec.timeout or defaults.timeout),
                    schedule_to_close_timeout=parse_duration(spec.total_timeout)
                    if spec.total_timeout
                    else None,
                    heartbeat_timeout=parse_duration(heartbeat) if heartbeat else None,
                    retry_policy=policy,
                    summary=f"{inv.step}: {tool_ref}",
                )
        except (ActivityError, ApplicationError) as err:
            # A local activity's final failure can come back as its ApplicationError itself.
            if is_cancelled_exception(err):
                return Result(round=round_, ok=False, cancelled=True, attempts=0)
            return Result(
                round=round_,
                ok=False,
                error=failure_message(err),
                attempts=attempts_of(err, policy),
            )
        if res.artifact is not None:
            ref = res.artifact.model_dump()
            return Result(
                round=round_,
                ok=True,
                output={ARTIFACT_MARKER: ref},
                preview=res.preview,
                artifact=ref,
                attempts=res.attempt,
            )
        return Result(
            round=round_, ok=True, output=res.output, preview=res.preview, attempts=res.attempt
        )

    async def child(self, spec: StepSpec, inv: Invoke) -> Result:
        """Run a snapshotted catalog pipeline, or an approved plan, as a child run; a catalog
        child's input is checked against its schema first, its output against `output_schema`."""
        round_ = inv.round
        if inv.plan is not None:
            child = Definition.model_validate(inv.plan)
            ref = f"plan {child.name!r}"
        else:
            ref = spec.pipeline if isinstance(spec.pipeline, str) else ""
            found = self.inp.pipelines.get(ref) or self.inp.pipelines.get(ref.partition("@")[0])
            if found is None:
                return Result(
                    round=round_, ok=False, error=f"pipeline {ref!r} was not in the run's snapshot"
                )
            child = found
        issues = await check(CheckCall(value=inv.args, json_schema=child.input, where="input"))
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
                WORKFLOW_NAME,
                self.inp.model_copy(
                    update={
                        "definition": child,
                        "input": inv.args,
                        "origin": None,
                        "resume": None,
                        "pipelines": {} if inv.plan is not None else self.inp.pipelines,
                    }
                ),
                id=child_id(info.workflow_id, inv.step, round_, inv.iteration),
                task_queue=self.queue(spec),
                static_summary=f"{child.name} v{child.version} (child of {info.workflow_id})",
                result_type=PipelineResult,
            )
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                return Result(round=round_, ok=False, cancelled=True, attempts=0)
            return Result(round=round_, ok=False, error=failure_message(err))
        if spec.output_schema is not None:
            fits = await check(
                CheckCall(value=result.output, json_schema=spec.output_schema, where="output")
            )
            if fits.issues:
                return Result(
                    round=round_,
                    ok=False,
                    error="output does not match output_schema: " + "; ".join(fits.issues),
                )
        return Result(round=round_, ok=True, output=result.output)

    async def notify(
        self,
        spec: NotifySpec,
        with_: dict[str, Any],
        slots: list[Slot],
        step_id: str,
        key: str,
        text: str,
    ) -> None:
        """Tell approvers; a failing notification never holds up or fails the run. `text` tells
        of the gate's subject, which is data: it fills no slot."""
        name, call = self.tool_call(
            step_id, spec.tool, {**with_, "text": text}, slots, key, scope="notify"
        )
        try:
            await workflow.execute_activity(
                name,
                call,
                result_type=ToolResult,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary=f"{step_id}: notify",
            )
        except ActivityError as err:
            workflow.logger.warning("gate notification failed: %s", failure_message(err))

    async def compensate(
        self,
        spec: StepSpec,
        unit_id: str,
        comp: CompensateSpec,
        args: dict[str, Any],
        slots: list[Slot],
    ) -> None:
        tool_ref = comp.resolved_tool or comp.tool
        key = f"{workflow.info().workflow_id}/{unit_id}/compensate"
        name, call = self.tool_call(unit_id, tool_ref, args, slots, key, scope="compensate")
        await workflow.execute_activity(
            name,
            call,
            result_type=ToolResult,
            task_queue=self.queue(spec),
            start_to_close_timeout=parse_duration(comp.timeout)
            if comp.timeout
            else COMPENSATE_TIMEOUT,
            retry_policy=retry_policy(comp.retry, self.definition.defaults)
            if comp.retry
            else COMPENSATE_RETRY,
            summary=f"{unit_id}: compensate with {tool_ref}",
        )


def child_id(workflow_id: str, unit_id: str, round_: int, iteration: int = 0) -> str:
    suffix = (f"-r{round_}" if round_ else "") + (f"-i{iteration}" if iteration else "")
    return f"{workflow_id}--{unit_id}{suffix}"


async def validate_plan(plan: CheckPlan) -> PlanResult:
    result: PlanResult = await workflow.execute_activity(
        VALIDATE_PLAN_ACTIVITY,
        PlanCall(
            definition=plan.definition, allowed_tools=plan.allowed_tools, max_steps=plan.max_steps
        ),
        result_type=PlanResult,
        start_to_close_timeout=PLAN_TIMEOUT,
        retry_policy=CHECK_RETRY,
        summary=f"{plan.step}: check the plan",
    )
    return result


async def check(call: CheckCall) -> CheckResult:
    result: CheckResult = await workflow.execute_local_activity(
        CHECK_ACTIVITY,
        call,
        result_type=CheckResult,
        start_to_close_timeout=CHECK_TIMEOUT,
        retry_policy=CHECK_RETRY,
        summary="check",
    )
    return result


async def authorize(origin: StartOrigin) -> AuthorizeResult:
    result: AuthorizeResult = await workflow.execute_activity(
        AUTHORIZE_ACTIVITY,
        AuthorizeCall(principal=origin.owner, needs=origin.needs),
        result_type=AuthorizeResult,
        start_to_close_timeout=AUTHORIZE_TIMEOUT,
        retry_policy=AUTHORIZE_RETRY,
        summary=f"may {origin.owner} still start schedule {origin.schedule_id}?",
    )
    return result


async def archive(chunk: AuditChunk) -> AuditChunkStored:
    result: AuditChunkStored = await workflow.execute_activity(
        ARCHIVE_AUDIT_ACTIVITY,
        chunk,
        result_type=AuditChunkStored,
        start_to_close_timeout=ARCHIVE_TIMEOUT,
        retry_policy=ARCHIVE_RETRY,
        summary=f"archive audit {chunk.first_seq}-{chunk.last_seq}",
    )
    return result
