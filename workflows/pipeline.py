"""PipelineWorkflow: runs a validated definition snapshot as a DAG of tool activities and gates."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from activities.models import ARTIFACT_MARKER, ToolCall, ToolResult
    from activities.secrets import mask
    from workflows import expr
    from workflows.contract import (
        MEMO_GATES,
        PATCH_GATES_MEMO,
        SA_AWAITING,
        SA_PIPELINE,
        SA_STATE,
        STATUS_QUERY,
        TERMINAL_STEP_STATES,
        RunState,
        StepState,
    )
    from workflows.definition import ApprovalSpec, Definition, NotifySpec, Stage, StepSpec
    from workflows.durations import parse_duration
    from workflows.gates import SYSTEM_ACTOR, Gate, merge_patch
    from workflows.models import (
        AuditEntry,
        CompensationView,
        Decision,
        GateSummary,
        GateView,
        LifecycleInput,
        PipelineInput,
        PipelineResult,
        Progress,
        RunStatus,
        StepView,
    )
    from workflows.policies import (
        COMPENSATE_RETRY,
        COMPENSATE_TIMEOUT,
        NOTIFY_RETRY,
        NOTIFY_TIMEOUT,
        retry_policy,
    )
    from workflows.refs import RefError, Scope
    from workflows.validation import validate_input

MAX_AUDIT = 1_000
MEMO_SUBJECT_CHARS = 1_024  # larger subjects are left out of the inbox line (status has them)
PREVIEW_CHARS = 2_048


class StepFailed(Exception):
    """A step ended in failure (after retries, or rejected at a gate)."""


class RunCancelled(Exception):
    """A gate decided to cancel the whole run."""


@dataclass
class StepRun:
    spec: StepSpec
    state: StepState = StepState.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    reason: str | None = None
    output: Any = None
    has_output: bool = False
    preview: str | None = None
    artifact: dict[str, Any] | None = None
    gate: Gate | None = None
    compensation: CompensationView | None = None
    completed_seq: int = 0
    round: int = 0
    approvers_seen: set[str] = field(default_factory=set)


def _failure_message(err: BaseException) -> str:
    """The innermost cause's message: what actually went wrong."""
    cause: BaseException | None = err
    message = str(err)
    while cause is not None:
        message = getattr(cause, "message", None) or str(cause) or message
        cause = cause.__cause__
    return message


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow:
    @workflow.init
    def __init__(self, inp: PipelineInput) -> None:
        self._inp = inp
        self._def: Definition = inp.definition
        self._input = inp.definition.effective_input(inp.input)
        self._steps: dict[str, StepRun] = {s.id: StepRun(spec=s) for s in self._def.steps}
        self._paused = False
        self._wake = False
        self._fatal: str | None = None
        self._cancelled_by: str | None = None
        self._closed: RunState | None = None
        self._output: Any = None
        self._audit: list[AuditEntry] = []
        self._revision = 0
        self._seq = 0
        self._sa_state: str | None = None
        self._sa_awaiting: list[str] | None = None
        self._memo_gates: list[GateSummary] = []
        self._started_at = workflow.now()
        self._background: set[asyncio.Task[None]] = set()

    # ---- run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: PipelineInput) -> PipelineResult:
        workflow.upsert_search_attributes([SA_PIPELINE.value_set(self._def.name)])
        self._publish()
        try:
            await self._schedule()
            if self._cancelled_by:
                raise RunCancelled(self._cancelled_by)
            if self._fatal:
                raise StepFailed(self._fatal)
            self._output = self._scope(lenient=True).resolve(self._def.output)
        except asyncio.CancelledError:
            await asyncio.shield(self._compensate())
            self._close(RunState.CANCELLED, "cancelled")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise
        except RunCancelled as err:
            await self._compensate()
            self._close(RunState.CANCELLED, f"cancelled at a gate by {err}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"run cancelled at a gate by {err}", type="RunCancelled", non_retryable=True
            ) from None
        except (StepFailed, RefError) as err:
            await self._compensate()
            self._close(RunState.FAILED, str(err))
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(str(err), type="PipelineFailed", non_retryable=True) from None
        self._close(RunState.COMPLETED, None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return PipelineResult(
            state=RunState.COMPLETED,
            output=self._output,
            steps={sid: r.state.value for sid, r in self._steps.items()},
        )

    async def _schedule(self) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            await self._schedule_until_done(tasks)
        except GeneratorExit:
            # The worker dropped this run from its cache and is closing its coroutines: nothing
            # may be awaited now (the run resumes from history elsewhere).
            raise
        except BaseException:
            await self._stop_running(tasks)
            raise
        await self._stop_running(tasks)

    async def _schedule_until_done(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        while not (self._fatal or self._cancelled_by):
            if not self._paused:
                self._start_ready(tasks)
            if all(r.state in TERMINAL_STEP_STATES for r in self._steps.values()):
                return
            self._wake = False
            await workflow.wait_condition(lambda: self._wake)

    @staticmethod
    async def _stop_running(tasks: dict[str, asyncio.Task[None]]) -> None:
        running = [t for t in tasks.values() if not t.done()]
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def _start_ready(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        limit = self._def.max_parallel
        for sid, run in self._steps.items():
            if run.state != StepState.PENDING or sid in tasks:
                continue
            deps = [self._steps[n] for n in run.spec.needs]
            if any(d.state not in TERMINAL_STEP_STATES for d in deps):
                continue
            blocked = [d for d in deps if not self._satisfies(d, run.spec)]
            if blocked:
                names = ", ".join(f"{d.spec.id!r} ({d.state.value})" for d in blocked)
                self._finish_step(run, StepState.SKIPPED, reason=f"needs {names}")
                continue
            if limit is not None and sum(not t.done() for t in tasks.values()) >= limit:
                return
            tasks[sid] = asyncio.create_task(self._run_step(run))

    @staticmethod
    def _satisfies(dep: StepRun, spec: StepSpec) -> bool:
        if dep.state == StepState.SUCCEEDED or (dep.state == StepState.SKIPPED and dep.has_output):
            return True
        return dep.state == StepState.SKIPPED and spec.allow_skipped_needs

    # ---- one step ----------------------------------------------------------------------------

    async def _run_step(self, run: StepRun) -> None:
        try:
            await self._execute_step(run)
        except asyncio.CancelledError:
            if run.gate and run.gate.undecided:
                run.gate.close("cancel", SYSTEM_ACTOR, workflow.now())
            self._finish_step(run, StepState.CANCELLED, reason="run stopped")
            raise
        except (StepFailed, RefError, expr.ExpressionError) as err:
            self._finish_step(run, StepState.FAILED, error=str(err))
            if run.spec.on_error == "fail":
                self._fatal = self._fatal or f"step {run.spec.id!r} failed: {err}"
        except RunCancelled as err:
            self._finish_step(run, StepState.CANCELLED, reason=f"run cancelled by {err}")
            self._cancelled_by = self._cancelled_by or str(err)
        finally:
            self._wake = True

    async def _execute_step(self, run: StepRun) -> None:
        spec = run.spec
        scope = self._scope()
        if spec.if_ and not expr.evaluate(expr.parse(spec.if_), scope.lookup):
            self._finish_step(run, StepState.SKIPPED, reason=f"condition false: {spec.if_}")
            return
        run.state = StepState.RUNNING
        run.started_at = workflow.now()
        self._touch()
        args = scope.resolve(spec.with_)
        gate_spec = spec.approval
        if gate_spec and gate_spec.stage == "before":
            gate = await self._gate(run, gate_spec, "before", args)
            if gate.outcome == "modify":
                args = merge_patch(args, gate.patch)
            elif gate.outcome != "approve":
                self._gate_end(run, gate)
                return
        while True:
            try:
                output = await self._invoke(run, args)
            except (ActivityError, ChildWorkflowError) as err:
                if is_cancelled_exception(err):
                    raise asyncio.CancelledError(str(err)) from err
                message = _failure_message(err)
                if not (gate_spec and gate_spec.stage == "on_failure"):
                    raise StepFailed(message) from None
                run.error = message
                gate = await self._gate(
                    run, gate_spec, "on_failure", {"error": message, "inputs": args}
                )
                if gate.outcome == "retry":
                    args = merge_patch(args, gate.patch or {})
                    run.round += 1
                    run.error = None
                    continue
                if gate.outcome == "skip" and gate.patch is not None:
                    self._set_output(run, gate.patch, None, None)
                self._gate_end(run, gate, failure=message)
                return
            if gate_spec and gate_spec.stage == "after":
                self._set_output(run, *output)
                gate = await self._gate(run, gate_spec, "after", run.output)
                if gate.outcome == "retry":
                    args = merge_patch(args, gate.patch or {})
                    run.round += 1
                    continue
                if gate.outcome == "modify":
                    self._set_output(run, merge_patch(run.output, gate.patch), None, None)
                elif gate.outcome != "approve":
                    self._gate_end(run, gate)
                    return
                self._finish_step(run, StepState.SUCCEEDED)
                return
            self._set_output(run, *output)
            self._finish_step(run, StepState.SUCCEEDED)
            return

    def _gate_end(self, run: StepRun, gate: Gate, failure: str | None = None) -> None:
        """Apply a gate outcome that stops the step: skip, reject or cancel."""
        who = gate.decided_by or SYSTEM_ACTOR
        if gate.outcome == "skip":
            self._finish_step(
                run, StepState.SKIPPED, reason=f"skipped at {gate.stage} gate by {who}"
            )
        elif gate.outcome == "cancel":
            raise RunCancelled(who)
        else:
            raise StepFailed(failure or f"rejected at {gate.stage} gate by {who}")

    async def _invoke(
        self, run: StepRun, args: dict[str, Any]
    ) -> tuple[Any, str | None, dict[str, Any] | None]:
        """Run the step's tool (or child pipeline); returns (output, preview, artifact)."""
        spec = run.spec
        defaults = self._def.defaults
        queue = spec.task_queue or defaults.task_queue or workflow.info().task_queue
        info = workflow.info()
        if spec.pipeline:
            name = spec.pipeline.partition("@")[0]
            child_def = self._inp.pipelines.get(name)
            if child_def is None:
                raise StepFailed(f"pipeline {name!r} was not in the run's snapshot")
            issues = validate_input(child_def, args)
            if issues:
                raise StepFailed(
                    f"input for pipeline {name!r} does not match its schema: "
                    + "; ".join(str(i) for i in issues)
                )
            run.attempts += 1
            suffix = f"-r{run.round}" if run.round else ""
            result = await workflow.execute_child_workflow(
                PipelineWorkflow.run,
                self._inp.model_copy(update={"definition": child_def, "input": args}),
                id=f"{info.workflow_id}--{spec.id}{suffix}",
                task_queue=queue,
                static_summary=f"{child_def.name} v{child_def.version} (child of {info.workflow_id})",
            )
            return result.output, None, None
        tool_ref = spec.resolved_tool or spec.tool or ""
        name, _, version = tool_ref.partition("@")
        key = f"{info.workflow_id}/{spec.id}" + (f"/r{run.round}" if run.round else "")
        res = await workflow.execute_activity(
            name,
            ToolCall(
                tool=name,
                version=version,
                step_id=spec.id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                args=args,
                idempotency_key=key,
                max_output_bytes=spec.max_output_bytes,
            ),
            result_type=ToolResult,
            task_queue=queue,
            start_to_close_timeout=parse_duration(spec.timeout or defaults.timeout),
            schedule_to_close_timeout=parse_duration(spec.total_timeout)
            if spec.total_timeout
            else None,
            heartbeat_timeout=self._heartbeat(spec),
            retry_policy=retry_policy(spec.retry, defaults),
            summary=f"{spec.id}: {tool_ref}",
        )
        run.attempts = max(run.attempts + 1, res.attempt)
        if res.artifact is not None:
            ref = res.artifact.model_dump()
            return {ARTIFACT_MARKER: ref}, res.preview, ref
        return res.output, res.preview, None

    def _heartbeat(self, spec: StepSpec) -> timedelta | None:
        value = spec.heartbeat_timeout or self._def.defaults.heartbeat_timeout
        return parse_duration(value) if value else None

    def _set_output(
        self, run: StepRun, output: Any, preview: str | None, artifact: dict[str, Any] | None
    ) -> None:
        run.output = output
        run.has_output = True
        run.artifact = artifact
        run.preview = preview if preview is not None else _preview(output)

    def _finish_step(
        self, run: StepRun, state: StepState, *, error: str | None = None, reason: str | None = None
    ) -> None:
        run.state = state
        run.ended_at = workflow.now()
        if error is not None:
            run.error = error
        if reason is not None:
            run.reason = reason
        if state == StepState.SUCCEEDED:
            self._seq += 1
            run.completed_seq = self._seq
        self._touch()

    # ---- gates -------------------------------------------------------------------------------

    async def _gate(self, run: StepRun, spec: ApprovalSpec, stage: Stage, subject: Any) -> Gate:
        now = workflow.now()
        timeout = parse_duration(spec.timeout) if spec.timeout else None
        gate = Gate(
            run.spec.id, spec, stage, run.round, subject, now, now + timeout if timeout else None
        )
        run.gate = gate
        auto = self._auto_approval(run, spec, stage)
        if auto:
            gate.close("approve" if stage != "on_failure" else "reject", SYSTEM_ACTOR, now)
            self._record(
                AuditEntry(
                    at=now, kind="auto_approve", gate=gate.step_id, action=gate.outcome, reason=auto
                )
            )
            return gate
        run.state = StepState.WAITING
        self._touch()
        self._notify(run, gate, "opened")
        remind = parse_duration(spec.remind_after) if spec.remind_after else None
        next_reminder = now + remind if remind else None
        while gate.undecided:
            wake_at = min(
                (t for t in (gate.deadline, next_reminder) if t is not None), default=None
            )
            try:
                await workflow.wait_condition(
                    lambda: not gate.undecided,
                    timeout=max(wake_at - workflow.now(), timedelta(0)) if wake_at else None,
                )
            except TimeoutError:
                now = workflow.now()
                if (
                    next_reminder
                    and now >= next_reminder
                    and (gate.deadline is None or next_reminder < gate.deadline)
                ):
                    self._record(AuditEntry(at=now, kind="reminder", gate=gate.step_id))
                    self._notify(run, gate, "reminder")
                    next_reminder = now + remind if remind else None
                    continue
                if gate.deadline and now >= gate.deadline:
                    self._on_timeout(run, gate)
        run.state = StepState.RUNNING
        run.error = None if gate.outcome == "retry" else run.error
        self._touch()
        return gate

    def _auto_approval(self, run: StepRun, spec: ApprovalSpec, stage: Stage) -> str | None:
        if self._inp.approval_mode == "auto":
            return "run approval_mode is auto"
        if spec.auto_approve_if and stage != "on_failure":
            scope = self._scope()
            if stage == "after":
                scope.outputs = {**scope.outputs, run.spec.id: run.output}
            if expr.evaluate(expr.parse(spec.auto_approve_if), scope.lookup):
                return f"auto_approve_if held: {spec.auto_approve_if}"
        return None

    def _on_timeout(self, run: StepRun, gate: Gate) -> None:
        now = workflow.now()
        spec = gate.spec
        if spec.on_timeout == "escalate" and not gate.escalated:
            limit = spec.escalation_timeout or spec.timeout
            gate.escalate(now + parse_duration(limit) if limit else None)
            self._record(
                AuditEntry(
                    at=now,
                    kind="escalation",
                    gate=gate.step_id,
                    reason=f"escalated to {', '.join(spec.escalate_to)}",
                )
            )
            self._notify(run, gate, "escalated")
            self._touch()
            return
        action = "reject" if spec.on_timeout == "escalate" else spec.on_timeout
        gate.close(action, f"{SYSTEM_ACTOR}:timeout", now)
        self._record(
            AuditEntry(
                at=now,
                kind="timeout",
                gate=gate.step_id,
                action=action,
                reason="gate deadline passed",
            )
        )

    def _notify(self, run: StepRun, gate: Gate, event: str) -> None:
        """Tell the approvers; a failing notification never holds up or fails the run."""
        spec: NotifySpec | None = gate.spec.notify or self._inp.notify.notify
        if spec is None:
            return
        info = workflow.info()
        link = (
            f"{self._inp.notify.link_base.rstrip('/')}/workflows/{info.workflow_id}"
            if self._inp.notify.link_base
            else ""
        )
        deadline = gate.deadline.isoformat() if gate.deadline else "none"
        text = (
            f"[{event}] {self._def.name} v{self._def.version}, run {info.workflow_id}: step "
            f"{gate.step_id!r} waits at its {gate.stage} gate for {', '.join(gate.approvers)}. "
            f"Review: {gate.spec.review or _preview(mask(gate.subject), 300)}. Deadline: {deadline}. {link}"
        ).strip()
        args = {**spec.with_, "text": text}
        name, _, version = spec.tool.partition("@")

        async def send() -> None:
            try:
                await workflow.execute_activity(
                    name,
                    ToolCall(
                        tool=name,
                        version=version,
                        step_id=gate.step_id,
                        workflow_id=info.workflow_id,
                        run_id=info.run_id,
                        args=args,
                        idempotency_key=f"{info.workflow_id}/{gate.step_id}/{gate.stage}/r{gate.round}/{event}",
                        scope="notify",
                    ),
                    result_type=ToolResult,
                    start_to_close_timeout=NOTIFY_TIMEOUT,
                    retry_policy=NOTIFY_RETRY,
                    summary=f"{gate.step_id}: notify {event}",
                )
            except ActivityError as err:
                workflow.logger.warning("gate notification failed: %s", _failure_message(err))

        task = asyncio.create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- decisions ---------------------------------------------------------------------------

    def _open_gate(self, gate_id: str) -> tuple[Gate | None, str | None]:
        run = self._steps.get(gate_id)
        if run is None or run.spec.approval is None:
            return None, f"run has no gate {gate_id!r}"
        if run.gate is None or not run.gate.undecided:
            state = run.gate.state if run.gate else "not open yet"
            return None, f"gate {gate_id!r} is not open ({state}); step is {run.state.value}"
        return run.gate, None

    def _admit(self, d: Decision) -> Gate | ApplicationError:
        """The open gate `d` may be applied to, or why it is refused."""
        run = self._steps.get(d.gate)
        if run is None or run.spec.approval is None:
            return ApplicationError(
                f"run has no gate {d.gate!r}", type="unknown_gate", non_retryable=True
            )
        gate, why = self._open_gate(d.gate)
        if gate is None:
            return ApplicationError(
                why or "gate not open", type="gate_not_open", non_retryable=True
            )
        barred = set().union(
            *(self._steps[g].approvers_seen for g in gate.spec.distinct_from if g in self._steps)
        )
        refusal = gate.check(d, self._inp.requester, barred)
        if refusal:
            return ApplicationError(refusal.message, type=refusal.code, non_retryable=True)
        return gate

    def _apply(self, gate: Gate, d: Decision, via: Literal["signal", "update"]) -> Gate:
        now = workflow.now()
        gate.apply(d, now)
        if d.action in ("approve", "modify"):
            self._steps[d.gate].approvers_seen.add(d.actor)
        self._record(self._decision_entry(d, now, via, "accepted"))
        self._touch()
        return gate

    @staticmethod
    def _decision_entry(
        d: Decision,
        at: datetime,
        via: Literal["signal", "update"],
        outcome: Literal["accepted", "refused"],
        reason: str | None = None,
    ) -> AuditEntry:
        return AuditEntry(
            at=at,
            kind="decision",
            gate=d.gate,
            actor=d.actor,
            roles=d.roles,
            action=d.action,
            comment=d.comment,
            patch=mask(d.patch),
            digest=d.digest,
            outcome=outcome,
            reason=reason,
            via=via,
        )

    @workflow.signal
    def decide(self, raw: Any) -> None:
        """A decision from the CLI, the Web UI or a script; refusals go to the audit trail."""
        now = workflow.now()
        try:
            d = raw if isinstance(raw, Decision) else Decision.model_validate(raw)
        except Exception as err:  # a malformed signal must not fail the workflow task
            self._record(
                AuditEntry(
                    at=now,
                    kind="decision",
                    outcome="refused",
                    reason=f"malformed decision: {err}",
                    via="signal",
                )
            )
            self._touch()
            return
        admitted = self._admit(d)
        if isinstance(admitted, ApplicationError):
            self._record(self._decision_entry(d, now, "signal", "refused", admitted.message))
            self._touch()
            return
        self._apply(admitted, d, "signal")

    @workflow.update
    def submit_decision(self, d: Decision) -> GateView:
        """A validated decision: refused before it reaches history when it cannot apply."""
        admitted = self._admit(d)
        if isinstance(admitted, ApplicationError):
            raise admitted  # only if the gate changed between validation and handling
        return self._apply(admitted, d, "update").view(mask(admitted.subject))

    @submit_decision.validator
    def _validate_decision(self, d: Decision) -> None:
        admitted = self._admit(d)
        if isinstance(admitted, ApplicationError):
            raise admitted

    @workflow.signal
    def pause(self, by: LifecycleInput | None = None) -> None:
        """Start no new steps until resumed; running steps finish."""
        if not self._paused and self._closed is None:
            self._paused = True
            self._lifecycle("pause", by)

    @workflow.signal
    def resume(self, by: LifecycleInput | None = None) -> None:
        """Continue a paused run."""
        if self._paused:
            self._paused = False
            self._wake = True
            self._lifecycle("resume", by)

    @workflow.signal
    def cancel(self, by: LifecycleInput | None = None) -> None:
        """Cancel the run (running steps stop, compensation runs), recording who and why."""
        if self._closed is None and not self._cancelled_by:
            self._cancelled_by = (by.actor if by and by.actor else None) or SYSTEM_ACTOR
            self._wake = True
            self._lifecycle("cancel", by)

    def _lifecycle(self, action: str, by: LifecycleInput | None) -> None:
        self._record(
            AuditEntry(
                at=workflow.now(),
                kind="lifecycle",
                action=action,
                actor=by.actor if by else None,
                reason=by.reason if by else None,
            )
        )
        self._touch()

    # ---- status ------------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        info = workflow.info()
        steps = [self._step_view(r) for r in self._steps.values()]
        done = sum(r.state in TERMINAL_STEP_STATES for r in self._steps.values())
        total = len(self._steps)
        return RunStatus(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            state=self._run_state().value,
            pipeline=self._def.name,
            version=self._def.version,
            requester=self._inp.requester,
            approval_mode=self._inp.approval_mode,
            started_at=self._started_at,
            revision=self._revision,
            paused=self._paused,
            steps=steps,
            progress=Progress(done=done, total=total, percent=round(100.0 * done / total, 1)),
            open_gates=[s.gate for s in steps if s.gate and s.gate.state == "open"],
            output=mask(self._output),
            error=self._fatal if self._closed == RunState.FAILED else None,
            audit=self._audit,
        )

    def _step_view(self, r: StepRun) -> StepView:
        duration = (
            int((r.ended_at - r.started_at).total_seconds() * 1000)
            if r.started_at and r.ended_at
            else None
        )
        return StepView(
            id=r.spec.id,
            tool=r.spec.resolved_tool or r.spec.tool,
            pipeline=r.spec.pipeline,
            state=r.state.value,
            attempts=r.attempts,
            started_at=r.started_at,
            ended_at=r.ended_at,
            duration_ms=duration,
            error=r.error,
            reason=r.reason,
            output_preview=r.preview,
            artifact=r.artifact,
            gate=r.gate.view(mask(r.gate.subject)) if r.gate else None,
            compensation=r.compensation,
        )

    def _run_state(self) -> RunState:
        if self._closed is not None:
            return self._closed
        if self._paused:
            return RunState.PAUSED
        if any(r.gate and r.gate.undecided for r in self._steps.values()):
            return RunState.WAITING
        return RunState.RUNNING

    def _awaiting(self) -> list[str]:
        who: set[str] = set()
        for r in self._steps.values():
            if r.gate and r.gate.undecided:
                who.update(r.gate.approvers)
        return sorted(who)

    def _touch(self) -> None:
        """Something changed: bump the revision and publish state to visibility and the Web UI."""
        self._revision += 1
        self._publish()

    def _publish(self) -> None:
        state = self._run_state().value
        awaiting = self._awaiting()
        updates: list[SearchAttributeUpdate[Any]] = []
        if state != self._sa_state:
            self._sa_state = state
            updates.append(SA_STATE.value_set(state))
        if awaiting != self._sa_awaiting:
            self._sa_awaiting = awaiting
            updates.append(
                SA_AWAITING.value_set(awaiting) if awaiting else SA_AWAITING.value_unset()
            )
        if updates:
            workflow.upsert_search_attributes(updates)
            workflow.set_current_details(self._details(state))
        gates = [
            r.gate.summary(mask(r.gate.subject), MEMO_SUBJECT_CHARS)
            for r in self._steps.values()
            if r.gate and r.gate.undecided
        ]
        if gates != self._memo_gates and workflow.patched(PATCH_GATES_MEMO):
            self._memo_gates = gates
            workflow.upsert_memo({MEMO_GATES: gates})

    def _details(self, state: str) -> str:
        lines = [f"**{state}** · {self._def.name} v{self._def.version}"]
        for r in self._steps.values():
            mark = (
                f" — waiting for {', '.join(r.gate.approvers)}"
                if r.gate and r.gate.undecided
                else ""
            )
            lines.append(f"- `{r.spec.id}`: {r.state.value}{mark}")
        return "\n".join(lines)

    def _record(self, entry: AuditEntry) -> None:
        self._audit.append(entry)
        if len(self._audit) > MAX_AUDIT:
            # Keep every accepted decision; drop the oldest refusal to bound history-carried state.
            for i, e in enumerate(self._audit):
                if e.outcome == "refused":
                    del self._audit[i]
                    break

    def _close(self, state: RunState, error: str | None) -> None:
        self._closed = state
        if error and not self._fatal:
            self._fatal = error
        self._touch()

    def _scope(self, *, lenient: bool = False) -> Scope:
        info = workflow.info()
        return Scope(
            self._input,
            {sid: r.output for sid, r in self._steps.items() if r.has_output},
            {sid: r.state.value for sid, r in self._steps.items()},
            {
                "workflow_id": info.workflow_id,
                "run_id": info.run_id,
                "requester": self._inp.requester.principal if self._inp.requester else None,
                "pipeline": self._def.name,
                "started_at": self._started_at.isoformat(),
            },
            lenient=lenient,
        )

    # ---- compensation ------------------------------------------------------------------------

    async def _compensate(self) -> None:
        """Undo succeeded steps in reverse completion order; record each outcome."""
        done = sorted(
            (
                (r, r.spec.compensate)
                for r in self._steps.values()
                if r.state == StepState.SUCCEEDED and r.spec.compensate is not None
            ),
            key=lambda pair: pair[0].completed_seq,
            reverse=True,
        )
        info = workflow.info()
        for r, comp in done:
            tool_ref = comp.resolved_tool or comp.tool
            name, _, version = tool_ref.partition("@")
            try:
                args = self._scope().resolve(comp.with_)
                await workflow.execute_activity(
                    name,
                    ToolCall(
                        tool=name,
                        version=version,
                        step_id=r.spec.id,
                        workflow_id=info.workflow_id,
                        run_id=info.run_id,
                        args=args,
                        idempotency_key=f"{info.workflow_id}/{r.spec.id}/compensate",
                        scope="compensate",
                    ),
                    result_type=ToolResult,
                    task_queue=r.spec.task_queue
                    or self._def.defaults.task_queue
                    or info.task_queue,
                    start_to_close_timeout=parse_duration(comp.timeout)
                    if comp.timeout
                    else COMPENSATE_TIMEOUT,
                    retry_policy=retry_policy(comp.retry, self._def.defaults)
                    if comp.retry
                    else COMPENSATE_RETRY,
                    summary=f"{r.spec.id}: compensate with {tool_ref}",
                )
                r.compensation = CompensationView(state="succeeded", at=workflow.now())
                r.state = StepState.COMPENSATED
            except (ActivityError, RefError) as err:
                r.compensation = CompensationView(
                    state="failed", error=_failure_message(err), at=workflow.now()
                )
            self._touch()


def _preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    text = json.dumps(mask(value), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
