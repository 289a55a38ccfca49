"""What a run does next, derived from its state until nothing changes.

`advance` starts every step whose needs are done (in any listing order), skips what cannot run,
turns results and decided gates into the step's next move, acts on the gates' clocks, and winds
the run down once it stops. It returns the effects the workflow shell must carry out (tool calls,
notifications); it never waits, reads a clock or does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflows import expr
from workflows.contract import StepState
from workflows.definition import Definition, Stage, StepSpec
from workflows.gates import Notify, on_time, open_gate
from workflows.models import AuditEntry, Principal
from workflows.refs import RefError, Scope
from workflows.state import Outcome, RunData, StepRecord, Stop
from workflows.votes import SYSTEM_ACTOR, close, go_on_voters, merge_patch

# Tool calls one run keeps out at once, far below Temporal's 2,000 pending activities.
MAX_IN_FLIGHT = 500


@dataclass(frozen=True)
class RunContext:
    """Facts of the run that references and auto-approval read."""

    workflow_id: str
    run_id: str
    pipeline: str
    started_at: str
    input: dict[str, Any] = field(default_factory=dict)
    requester: Principal | None = None
    approval_mode: str = "manual"

    def scope(self, state: RunData, *, lenient: bool = False) -> Scope:
        return Scope(
            self.input,
            {sid: s.output for sid, s in state.steps.items() if s.has_output},
            {sid: s.state.value for sid, s in state.steps.items()},
            {
                "workflow_id": self.workflow_id,
                "run_id": self.run_id,
                "requester": self.requester.principal if self.requester else None,
                "pipeline": self.pipeline,
                "started_at": self.started_at,
            },
            lenient=lenient,
        )


@dataclass(frozen=True)
class Invoke:
    """Call the step's tool (or child pipeline) for this round with these arguments."""

    step: str
    round: int
    args: dict[str, Any]


Effect = Invoke | Notify


def advance(
    state: RunData, d: Definition, ctx: RunContext, now: datetime, *, hold: bool = False
) -> list[Effect]:
    """Move the run as far as its state allows; the effects to carry out, in order. `hold`: start
    no new step (the run is about to continue as new and waits for what is out)."""
    effects: list[Effect] = list(on_time(state, d, now))
    moved = True
    while moved:
        moved = False
        for spec in d.steps:
            moved |= _move(state, spec, d, ctx, now, effects, hold)
    if state.stop is not None:
        _wind_down(state, now)
    return effects


def finished(state: RunData) -> bool:
    """Every step has reached a final state."""
    return all(s.phase == "done" for s in state.steps.values())


def _move(
    state: RunData,
    spec: StepSpec,
    d: Definition,
    ctx: RunContext,
    now: datetime,
    effects: list[Effect],
    hold: bool,
) -> bool:
    step = state.steps[spec.id]
    if step.phase == "pending":
        return _start(state, spec, d, ctx, now, effects, hold)
    if step.phase == "running" and step.result is not None:
        _returned(state, spec, ctx, now, effects)
        return True
    if step.phase == "gate" and step.gate is not None and not step.gate.open:
        _decided(state, spec, now, effects)
        return True
    return False


def _satisfies(dep: StepRecord, spec: StepSpec) -> bool:
    if dep.state == StepState.SUCCEEDED or (dep.state == StepState.SKIPPED and dep.has_output):
        return True
    return dep.state == StepState.SKIPPED and spec.allow_skipped_needs


def _room(state: RunData, d: Definition) -> bool:
    limit = min(d.max_parallel or MAX_IN_FLIGHT, MAX_IN_FLIGHT)
    return sum(s.phase == "running" for s in state.steps.values()) < limit


def _start(
    state: RunData,
    spec: StepSpec,
    d: Definition,
    ctx: RunContext,
    now: datetime,
    effects: list[Effect],
    hold: bool,
) -> bool:
    step = state.steps[spec.id]
    deps = [state.steps[n] for n in spec.needs]
    if state.stop is not None or any(dep.phase != "done" for dep in deps):
        return False
    blocked = [dep for dep in deps if not _satisfies(dep, spec)]
    if blocked:
        names = ", ".join(f"{dep.id!r} ({dep.state.value})" for dep in blocked)
        _finish(state, step, StepState.SKIPPED, now, reason=f"needs {names}")
        return True
    if hold or state.paused or not _room(state, d):
        return False
    scope = ctx.scope(state)
    try:
        if spec.if_ and not expr.truthy(expr.evaluate(expr.parse(spec.if_), scope.lookup)):
            _finish(state, step, StepState.SKIPPED, now, reason=f"condition false: {spec.if_}")
            return True
        step.args = scope.resolve(spec.with_)
    except (expr.ExpressionError, RefError) as err:
        step.started_at = now
        _fail(state, spec, step, str(err), now)
        return True
    step.state = StepState.RUNNING
    step.started_at = now
    if spec.approval is not None and spec.approval.stage == "before":
        _open(state, spec, step, "before", step.args, ctx, now, effects)
    else:
        _run(state, step, now, effects)
    return True


def _run(state: RunData, step: StepRecord, now: datetime, effects: list[Effect]) -> None:
    if state.stop is not None:
        _finish(state, step, StepState.CANCELLED, now, reason="run stopped")
        return
    step.phase = "running"
    step.state = StepState.RUNNING
    effects.append(Invoke(step.id, step.round, step.args or {}))


def _open(
    state: RunData,
    spec: StepSpec,
    step: StepRecord,
    stage: Stage,
    subject: Any,
    ctx: RunContext,
    now: datetime,
    effects: list[Effect],
) -> None:
    assert spec.approval is not None  # callers open only gates the step declares
    gate = open_gate(step, spec.approval, stage, subject, now)
    reason = _auto(state, spec, step, stage, ctx, now)
    if reason is None:
        effects.append(Notify(step.id, gate.gate, "opened"))
        return
    outcome: Outcome = "reject" if stage == "on_failure" else "approve"
    close(gate, outcome, [SYSTEM_ACTOR], now, None)
    state.record(
        AuditEntry(at=now, kind="auto_approve", gate=gate.gate, action=outcome, reason=reason)
    )


def _auto(
    state: RunData, spec: StepSpec, step: StepRecord, stage: Stage, ctx: RunContext, now: datetime
) -> str | None:
    """Why the gate decides itself, or None. A condition that cannot be evaluated leaves the gate
    to people, and says why in the audit."""
    approval = spec.approval
    if approval is None:
        return None
    if ctx.approval_mode == "auto":
        return "run approval_mode is auto"
    if not approval.auto_approve_if or stage == "on_failure":
        return None
    scope = ctx.scope(state)
    try:
        held = expr.truthy(expr.evaluate(expr.parse(approval.auto_approve_if), scope.lookup))
    except (expr.ExpressionError, RefError) as err:
        state.record(
            AuditEntry(
                at=now,
                kind="auto_approve",
                gate=step.id,
                outcome="refused",
                reason=f"auto_approve_if not evaluated, the gate waits for people: {err}",
            )
        )
        return None
    return f"auto_approve_if held: {approval.auto_approve_if}" if held else None


def _returned(
    state: RunData, spec: StepSpec, ctx: RunContext, now: datetime, effects: list[Effect]
) -> None:
    step = state.steps[spec.id]
    result = step.result
    assert result is not None  # _move checked
    step.result = None
    step.attempts += result.attempts
    stage = spec.approval.stage if spec.approval else None
    if result.cancelled:
        _finish(state, step, StepState.CANCELLED, now, reason="run stopped")
    elif result.ok:
        _set_output(step, result.output, result.preview, result.artifact)
        if stage == "after" and state.stop is None:
            _open(state, spec, step, "after", step.output, ctx, now, effects)
        else:
            _finish(state, step, StepState.SUCCEEDED, now)
    else:
        step.error = result.error
        if stage == "on_failure" and state.stop is None:
            subject = {"error": result.error, "inputs": step.args}
            _open(state, spec, step, "on_failure", subject, ctx, now, effects)
        else:
            _fail(state, spec, step, result.error or "failed", now)


def _decided(state: RunData, spec: StepSpec, now: datetime, effects: list[Effect]) -> None:
    step = state.steps[spec.id]
    gate = step.gate
    assert gate is not None and gate.outcome is not None  # _move checked
    step.approvers_seen = sorted(set(step.approvers_seen) | go_on_voters(gate))
    who = ", ".join(gate.decided_by) or SYSTEM_ACTOR
    outcome, stage = gate.outcome, gate.stage
    if outcome == "cancel":
        _finish(state, step, StepState.CANCELLED, now, reason=f"cancelled at {stage} gate by {who}")
        if state.stop is None:
            state.stop = Stop(kind="cancelled", message=f"run cancelled at a gate by {who}", by=who)
    elif outcome == "reject":
        failure = f"{step.error}; " if stage == "on_failure" and step.error else ""
        _fail(state, spec, step, f"{failure}rejected at {stage} gate by {who}", now)
    elif outcome == "skip":
        if stage == "after":
            step.output, step.has_output, step.preview, step.artifact = None, False, None, None
        if stage == "on_failure" and gate.patch is not None:
            _set_output(step, gate.patch, None, None)
        _finish(state, step, StepState.SKIPPED, now, reason=f"skipped at {stage} gate by {who}")
    elif outcome == "retry":
        step.round += 1
        step.args = merge_patch(step.args, gate.patch or {})
        step.error = None
        _run(state, step, now, effects)
    elif stage == "before":  # approve or modify: run with what the gate shows now
        step.args = gate.subject
        _run(state, step, now, effects)
    else:  # approve or modify after the call: the output is what the gate shows now
        if gate.modified:
            _set_output(step, gate.subject, None, None)
        _finish(state, step, StepState.SUCCEEDED, now)


def _set_output(
    step: StepRecord, output: Any, preview: str | None, artifact: dict[str, Any] | None
) -> None:
    step.output = output
    step.has_output = True
    step.artifact = artifact
    step.preview = preview


def _finish(
    state: RunData,
    step: StepRecord,
    final: StepState,
    now: datetime,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    step.state = final
    step.phase = "done"
    step.ended_at = now
    if reason is not None:
        step.reason = reason
    if error is not None:
        step.error = error
    if final == StepState.SUCCEEDED:
        state.seq += 1
        step.completed_seq = state.seq


def _fail(state: RunData, spec: StepSpec, step: StepRecord, error: str, now: datetime) -> None:
    _finish(state, step, StepState.FAILED, now, error=error)
    if spec.on_error == "fail" and state.stop is None:
        state.stop = Stop(kind="failed", message=f"step {spec.id!r} failed: {error}")


def _wind_down(state: RunData, now: datetime) -> None:
    """Once the run stops: open gates close, and when nothing is out any more, the steps never
    reached end too (skipped when the run failed, cancelled when it was cancelled)."""
    assert state.stop is not None  # advance checked
    for step in state.steps.values():
        if step.phase == "gate" and step.gate is not None and step.gate.open:
            close(step.gate, "cancel", [SYSTEM_ACTOR], now, None)
            _finish(state, step, StepState.CANCELLED, now, reason="run stopped")
    if state.in_flight():
        return
    final = StepState.SKIPPED if state.stop.kind == "failed" else StepState.CANCELLED
    verb = "failed" if state.stop.kind == "failed" else "was cancelled"
    for step in state.steps.values():
        if step.phase == "pending":
            _finish(state, step, final, now, reason=f"not reached: the run {verb}")
