"""How PipelineWorkflow calls tools: a step's tool activity (local or regular), a gate's
notification, a compensation. Workflow code (deterministic); the rules of what to call and when
live in the scheduler. Child runs are in children.py, Stepgate's own activities in internal.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.documents import canonical_json
    from activities.models import (
        ARTIFACT_MARKER,
        Slot,
        ToolCall,
        ToolResult,
    )
    from activities.notice import GateNotice
    from workflows.language.definition import CompensateSpec, Definition, NotifySpec, StepSpec
    from workflows.language.durations import parse_duration
    from workflows.language.limits import (
        LOCAL_INLINE_BYTES,
        LOCAL_TIMEOUT,
        MIN_PREVIEW_BYTES,
    )
    from workflows.models import PipelineInput
    from workflows.retries import (
        COMPENSATE_RETRY,
        COMPENSATE_TIMEOUT,
        NOTIFY_RETRY,
        NOTIFY_TIMEOUT,
        retry_policy,
    )
    from workflows.rules.state import Result
    from workflows.rules.units import Invoke


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


@dataclass(frozen=True, slots=True)
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
        named = {text for s in slots for kind, text in s.parts or () if kind == "secret"}
        bindings = {n: b for n in sorted(named) if (b := self.definition.binding(n)) is not None}
        return name, ToolCall(
            tool=name,
            version=version,
            step_id=spec_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            args=args,
            slots=slots,
            idempotency_key=key,
            secret_bindings=bindings,
            **kw,
        )

    async def tool(self, spec: StepSpec, inv: Invoke, *, local: bool) -> Result:
        """The step's tool call: inside the workflow task as a local activity when `local`
        (the step's choice, within the task's budget), else a regular activity."""
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
            inline_bytes=min(inv.inline_bytes, LOCAL_INLINE_BYTES) if local else inv.inline_bytes,
            preview_bytes=min(inv.preview_bytes, MIN_PREVIEW_BYTES) if local else inv.preview_bytes,
        )
        summary = f"{inv.step}: {tool_ref}" + (" (local)" if local else "")
        return await self.run(spec, name, call, local=local, summary=summary, round_=inv.round)

    async def run(
        self,
        spec: StepSpec,
        name: str,
        call: ToolCall,
        *,
        local: bool,
        summary: str,
        round_: int = 0,
        attempt_timeout: str | None = None,
    ) -> Result:
        """One tool activity under the step's retry policy, its outcome as a Result.
        `attempt_timeout`: one attempt's limit (the step's own `timeout` when not given)."""
        defaults = self.definition.defaults
        policy = retry_policy(spec.retry, defaults)
        heartbeat = spec.heartbeat_timeout or defaults.heartbeat_timeout
        attempt = attempt_timeout if attempt_timeout is not None else spec.timeout
        total = parse_duration(spec.total_timeout) if spec.total_timeout else None
        try:
            if local:
                # Inside the workflow task: no server round trips, retries kept local.
                res = await workflow.execute_local_activity(
                    name,
                    call,
                    result_type=ToolResult,
                    start_to_close_timeout=parse_duration(attempt) if attempt else LOCAL_TIMEOUT,
                    schedule_to_close_timeout=total,
                    retry_policy=policy,
                    summary=summary,
                )
            else:
                res = await workflow.execute_activity(
                    name,
                    call,
                    result_type=ToolResult,
                    task_queue=self.queue(spec),
                    start_to_close_timeout=parse_duration(attempt or defaults.timeout),
                    schedule_to_close_timeout=total,
                    heartbeat_timeout=parse_duration(heartbeat) if heartbeat else None,
                    retry_policy=policy,
                    summary=summary,
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
                size=len(canonical_json(ref)) + len(res.preview),
            )
        return Result(
            round=round_,
            ok=True,
            output=res.output,
            preview=res.preview,
            attempts=res.attempt,
            size=res.size + len(res.preview),
        )

    async def notify(
        self,
        spec: NotifySpec,
        with_: dict[str, Any],
        slots: list[Slot],
        step_id: str,
        key: str,
        text: str,
        notice: GateNotice | None = None,
    ) -> Any:
        """Tell approvers; the tool's output, or None when it failed (a failing notification
        never holds up or fails the run). `text` tells of the gate's subject, which is data: it
        fills no slot. `notice` (for NOTICE_TOOLS) goes in as `gate`, set after the step's own
        `with`, so a pipeline cannot forge it."""
        args = {**with_, "text": text}
        if notice is not None:
            args["gate"] = notice.model_dump(mode="json")
        name, call = self.tool_call(step_id, spec.tool, args, slots, key, scope="notify")
        try:
            res = await workflow.execute_activity(
                name,
                call,
                result_type=ToolResult,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary=f"{step_id}: notify with {spec.tool}",
            )
        except ActivityError as err:
            workflow.logger.warning("gate notification failed: %s", failure_message(err))
            return None
        return res.output

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
