"""Gates, decisions, lifecycle and status of the pre-core-v2 engine (frozen: do not change)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import ToolCall, ToolResult
    from activities.secrets import mask
    from workflows import expr
    from workflows.contract import (
        MEMO_GATES,
        PATCH_GATES_MEMO,
        SA_AWAITING,
        SA_STATE,
        TERMINAL_STEP_STATES,
        RunState,
        StepState,
    )
    from workflows.definition import ApprovalSpec, Definition, NotifySpec, Stage
    from workflows.durations import parse_duration
    from workflows.legacy.gates import SYSTEM_ACTOR, Gate
    from workflows.legacy.steprun import (
        MEMO_SUBJECT_CHARS,
        StepRun,
        failure_message,
        preview_of,
    )
    from workflows.models import (
        AuditEntry,
        Decision,
        GateSummary,
        GateView,
        LifecycleInput,
        PipelineInput,
        Progress,
        RunStatus,
        StepView,
    )
    from workflows.policies import NOTIFY_RETRY, NOTIFY_TIMEOUT
    from workflows.refs import Scope

MAX_AUDIT = 1_000


class GatingMixin:
    """State the engine keeps; the methods below read and change it."""

    _inp: PipelineInput
    _def: Definition
    _input: dict[str, Any]
    _steps: dict[str, StepRun]
    _paused: bool
    _wake: bool
    _fatal: str | None
    _cancelled_by: str | None
    _closed: RunState | None
    _output: Any
    _audit: list[AuditEntry]
    _revision: int
    _sa_state: str | None
    _sa_awaiting: list[str] | None
    _memo_gates: list[GateSummary]
    _started_at: datetime
    _background: set[asyncio.Task[None]]

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
            f"Review: {gate.spec.review or preview_of(mask(gate.subject), 300)}. Deadline: {deadline}. {link}"
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
                workflow.logger.warning("gate notification failed: %s", failure_message(err))

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

    def submit_decision(self, d: Decision) -> GateView:
        """A validated decision: refused before it reaches history when it cannot apply."""
        admitted = self._admit(d)
        if isinstance(admitted, ApplicationError):
            raise admitted  # only if the gate changed between validation and handling
        return self._apply(admitted, d, "update").view(mask(admitted.subject))

    def validate_decision(self, d: Decision) -> None:
        admitted = self._admit(d)
        if isinstance(admitted, ApplicationError):
            raise admitted

    def pause(self, by: LifecycleInput | None = None) -> None:
        """Start no new steps until resumed; running steps finish."""
        if not self._paused and self._closed is None:
            self._paused = True
            self._lifecycle("pause", by)

    def resume(self, by: LifecycleInput | None = None) -> None:
        """Continue a paused run."""
        if self._paused:
            self._paused = False
            self._wake = True
            self._lifecycle("resume", by)

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
