"""What happens to one unit of work (a step, or one item of a for_each step) as it starts, as
its results come back and as its gates are decided. The phase machine steps and items share;
pure: `now` is given and effects are returned, never carried out."""

from __future__ import annotations

from typing import Any

from workflows.language import expr
from workflows.language.definition import PRIORITIES, ApprovalSpec, Stage, StepSpec
from workflows.language.durations import parse_duration
from workflows.language.limits import MAX_ITEMS
from workflows.language.refs import RefError, Scope
from workflows.models import AuditEntry
from workflows.rules.gates import Notify, open_gate
from workflows.rules.state import Iteration, Outcome, StepRecord, Stop
from workflows.rules.states import StepState
from workflows.rules.turn import (
    CheckPlan,
    Effect,
    Invoke,
    RunContext,
    Turn,
    step_of,
    truthy,
    unit_scope,
)
from workflows.rules.votes import SYSTEM_ACTOR, close, digest_of, go_on_voters, merge_patch

__all__ = [
    "CheckPlan",
    "Effect",
    "Invoke",
    "RunContext",
    "Turn",
    "decided",
    "expand",
    "fail",
    "failed",
    "finish",
    "gated",
    "gather",
    "next_iteration",
    "open_",
    "plan_digest",
    "planned",
    "returned",
    "run",
    "set_output",
    "start",
    "start_each",
    "step_of",
    "truthy",
    "unit_scope",
]


# ---- starting ----------------------------------------------------------------------------


def start(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """A unit whose needs are met: its condition, its inputs, then its gate or its call."""
    scope = t.scope(unit)
    unit.started_at = t.now
    try:
        if spec.if_ and not truthy(spec.if_, scope):
            finish(t, unit, StepState.SKIPPED, reason=f"condition false: {spec.if_}")
            return
        unit.args, unit.slots = scope.resolve_slots(spec.with_)
        plan = spec.pipeline.definition if not isinstance(spec.pipeline, str | None) else None
        plan_value = scope.resolve(plan) if plan is not None else None
    except (expr.ExpressionError, RefError) as err:
        fail(t, spec, unit, str(err))
        return
    unit.state = StepState.RUNNING
    if plan is not None and not isinstance(spec.pipeline, str | None):
        unit.phase = "planning"
        t.effects.append(
            CheckPlan(
                unit.id, plan_value, list(spec.pipeline.allowed_tools), spec.pipeline.max_steps
            )
        )
        return
    if spec.repeat is not None and spec.repeat.timeout:
        unit.deadline = t.now + parse_duration(spec.repeat.timeout)
    if gated(spec, unit, "before"):
        open_(t, spec, unit, "before", unit.args)
    else:
        run(t, spec, unit)


def gated(spec: StepSpec, unit: StepRecord, stage: Stage) -> bool:
    """Whether this unit has a gate of its own at `stage` (for_each items do only per item)."""
    approval = spec.approval
    if approval is None or approval.stage != stage:
        return False
    if spec.for_each is None:
        return True
    return approval.per_item == (unit.index is not None)


def run(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    if t.state.stop is not None:
        finish(t, unit, StepState.CANCELLED, reason="run stopped")
        return
    unit.phase = "running"
    unit.state = StepState.RUNNING
    plan = unit.plan.definition if unit.plan is not None else None
    t.effects.append(
        Invoke(unit.id, unit.round, unit.args or {}, list(unit.slots), unit.iteration, plan)
    )


def planned(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """The plan's check came back: fail with every error, or review it, or run it."""
    assert unit.plan is not None  # the caller checked
    if unit.plan.errors:
        fail(t, spec, unit, "the plan is not valid: " + "; ".join(unit.plan.errors))
        return
    if gated(spec, unit, "before"):
        open_(t, spec, unit, "before", {"plan": unit.plan.definition, "input": unit.args})
    else:
        run(t, spec, unit)


# ---- gates -------------------------------------------------------------------------------


def open_(t: Turn, spec: StepSpec, unit: StepRecord, stage: Stage, subject: Any) -> None:
    approval = spec.approval
    assert approval is not None  # callers open only gates the step declares
    gate = open_gate(unit, approval, stage, subject, t.now)
    gate.step, gate.item = spec.id, unit.index
    scope = t.scope(unit, output=unit.output) if stage != "before" else t.scope(unit)
    gate.review, gate.priority = _review(approval, scope), _priority(approval, scope)
    reason = _auto(t, approval, unit, stage, scope)
    if reason is None:
        t.effects.append(Notify(unit.id, gate.gate, "opened"))
        return
    outcome: Outcome = "reject" if stage == "on_failure" else "approve"
    close(gate, outcome, [SYSTEM_ACTOR], t.now, None)
    t.state.record(
        AuditEntry(at=t.now, kind="auto_approve", gate=gate.gate, action=outcome, reason=reason)
    )


def _review(approval: ApprovalSpec, scope: Scope) -> str | None:
    if approval.review is None:
        return None
    try:
        return str(scope.resolve(approval.review))
    except RefError as err:
        return f"{approval.review} (references not resolved: {err})"


def _priority(approval: ApprovalSpec, scope: Scope) -> Any:
    """The gate's priority: a word, a reference to one, or the first condition that holds."""
    chosen = approval.priority
    try:
        if isinstance(chosen, dict):
            held = [p for p in PRIORITIES if p in chosen and truthy(chosen[p], scope)]
            return held[0] if held else "normal"
        value = scope.resolve(chosen)
    except (expr.ExpressionError, RefError):
        return "normal"
    return value if value in PRIORITIES else "normal"


def _auto(
    t: Turn, approval: ApprovalSpec, unit: StepRecord, stage: Stage, scope: Scope
) -> str | None:
    """Why the gate decides itself, or None. A condition that cannot be evaluated leaves the gate
    to people, and says why in the audit."""
    if t.ctx.approval_mode == "auto":
        return "run approval_mode is auto"
    if not approval.auto_approve_if or stage == "on_failure":
        return None
    if stage == "after":  # the step's own output, as the gate shows it
        scope = scope.with_local()
        scope.outputs = {**scope.outputs, step_of(unit): unit.output}
    try:
        held = truthy(approval.auto_approve_if, scope)
    except (expr.ExpressionError, RefError) as err:
        t.state.record(
            AuditEntry(
                at=t.now,
                kind="auto_approve",
                gate=unit.id,
                outcome="refused",
                reason=f"auto_approve_if not evaluated, the gate waits for people: {err}",
            )
        )
        return None
    return f"auto_approve_if held: {approval.auto_approve_if}" if held else None


def decided(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """A decided gate moves its unit on."""
    gate = unit.gate
    assert gate is not None and gate.outcome is not None  # the caller checked
    unit.approvers_seen = sorted(set(unit.approvers_seen) | go_on_voters(gate))
    who = ", ".join(gate.decided_by) or SYSTEM_ACTOR
    outcome, stage = gate.outcome, gate.stage
    if outcome == "cancel":
        finish(t, unit, StepState.CANCELLED, reason=f"cancelled at {stage} gate by {who}")
        if t.state.stop is None:
            t.state.stop = Stop(
                kind="cancelled", message=f"run cancelled at a gate by {who}", by=who
            )
    elif outcome == "reject":
        failure = f"{unit.error}; " if stage == "on_failure" and unit.error else ""
        fail(t, spec, unit, f"{failure}rejected at {stage} gate by {who}")
    elif outcome == "skip":
        if stage == "after":
            unit.output, unit.has_output, unit.preview, unit.artifact = None, False, None, None
        if stage == "on_failure" and gate.patch is not None:
            set_output(unit, gate.patch, None, None)
        finish(t, unit, StepState.SKIPPED, reason=f"skipped at {stage} gate by {who}")
    elif outcome == "retry":
        unit.round += 1
        unit.args = merge_patch(unit.args, gate.patch or {})
        unit.error = None
        _go_on(t, spec, unit)
    elif stage == "before":  # approve or modify: go on with what the gate shows now
        if spec.for_each is not None and unit.index is None:
            expand(t, spec, unit, gate.subject if isinstance(gate.subject, list) else [])
        else:
            if unit.plan is None:
                unit.args = gate.subject
            _go_on(t, spec, unit)
    else:  # approve or modify after the call: the output is what the gate shows now
        if gate.modified:
            set_output(unit, gate.subject, None, None)
        finish(t, unit, StepState.SUCCEEDED)


def _go_on(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """After a gate: queue the call for the scheduler, which starts it once `max_parallel`
    leaves room (a run that stopped meanwhile ends the unit instead)."""
    if t.state.stop is None:
        unit.phase, unit.state = "queued", StepState.PENDING
    else:
        run(t, spec, unit)


# ---- results -----------------------------------------------------------------------------


def returned(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """A call came back: check it, loop on it, review it, or finish the unit."""
    result = unit.result
    assert result is not None  # the caller checked
    unit.result = None
    unit.attempts += result.attempts
    if result.cancelled:
        finish(t, unit, StepState.CANCELLED, reason="run stopped")
        return
    if not result.ok:
        failed(t, spec, unit, result.error or "failed")
        return
    set_output(unit, result.output, result.preview, result.artifact)
    # `until` judges each iteration; `check` judges what the step ends with.
    if spec.repeat is not None and not _loop_done(t, spec, unit):
        return
    if spec.check is not None:
        try:
            passed = truthy(spec.check.condition, t.scope(unit, output=result.output))
        except (expr.ExpressionError, RefError) as err:
            failed(t, spec, unit, f"check could not be evaluated: {err}")
            return
        if not passed:
            failed(t, spec, unit, f"check failed: {spec.check.message}")
            return
    if gated(spec, unit, "after") and t.state.stop is None:
        open_(t, spec, unit, "after", unit.output)
    else:
        finish(t, unit, StepState.SUCCEEDED)


def failed(t: Turn, spec: StepSpec, unit: StepRecord, error: str) -> None:
    unit.error = error
    if gated(spec, unit, "on_failure") and t.state.stop is None:
        open_(t, spec, unit, "on_failure", {"error": error, "inputs": unit.args})
    else:
        fail(t, spec, unit, error)


def _loop_done(t: Turn, spec: StepSpec, unit: StepRecord) -> bool:
    """After an iteration: True when the loop is over; otherwise the next one is arranged."""
    repeat = spec.repeat
    assert repeat is not None  # the caller checked
    n = unit.iteration + 1
    try:
        held = truthy(repeat.until, t.scope(unit, output=unit.output, iteration=n))
    except (expr.ExpressionError, RefError) as err:
        fail(t, spec, unit, f"repeat.until could not be evaluated: {err}")
        return False
    unit.iterations.append(Iteration(n=n, ok=True, preview=unit.preview, until=held, at=t.now))
    if held:
        return True
    if repeat.max_iterations is not None and n >= repeat.max_iterations:
        fail(t, spec, unit, f"repeat.until did not hold within {n} iterations")
        return False
    if unit.deadline is not None and t.now >= unit.deadline:
        fail(t, spec, unit, f"repeat.until did not hold within {repeat.timeout}")
        return False
    unit.previous = unit.output
    if repeat.every:
        unit.phase = "sleeping"
        due = t.now + parse_duration(repeat.every)
        unit.next_at = min(due, unit.deadline) if unit.deadline else due
    else:
        next_iteration(t, spec, unit)
    return False


def next_iteration(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """Run the loop once more, its inputs resolved again (they may read `previous.output`)."""
    if unit.deadline is not None and t.now >= unit.deadline:
        assert spec.repeat is not None  # only repeat steps sleep
        fail(t, spec, unit, f"repeat.until did not hold within {spec.repeat.timeout}")
        return
    unit.next_at = None
    unit.iteration += 1
    try:
        unit.args, unit.slots = t.scope(unit).resolve_slots(spec.with_)
    except RefError as err:
        fail(t, spec, unit, str(err))
        return
    run(t, spec, unit)


# ---- for_each ----------------------------------------------------------------------------


def start_each(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """A for_each step: its list, a gate over the whole list if it has one, then its items."""
    unit.started_at = t.now
    assert spec.for_each is not None  # the caller checked
    try:
        values = t.scope(unit).resolve(spec.for_each)
    except RefError as err:
        fail(t, spec, unit, str(err))
        return
    if not isinstance(values, list):
        fail(t, spec, unit, f"for_each must be a list, got {type(values).__name__}")
        return
    if len(values) > MAX_ITEMS:
        fail(t, spec, unit, f"for_each has {len(values)} items, more than {MAX_ITEMS}")
        return
    unit.state = StepState.RUNNING
    if gated(spec, unit, "before"):
        open_(t, spec, unit, "before", values)
    else:
        expand(t, spec, unit, values)


def expand(t: Turn, spec: StepSpec, unit: StepRecord, values: list[Any]) -> None:
    """A for_each step's items become units of their own, `<step>.<index>`."""
    unit.items = [
        StepRecord(id=f"{unit.id}.{i}", index=i, item=value) for i, value in enumerate(values)
    ]
    unit.phase = "items"
    unit.state = StepState.RUNNING


def gather(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """Every item is done: the step's output is their outputs, in order."""
    items = unit.items or []
    set_output(unit, [i.output if i.has_output else None for i in items], None, None)
    unit.attempts = sum(i.attempts for i in items)
    failures = [i for i in items if i.state == StepState.FAILED]
    if failures and spec.on_error == "fail":
        finish(
            t, unit, StepState.FAILED, error=f"item {failures[0].index} failed: {failures[0].error}"
        )
        return
    if gated(spec, unit, "after") and t.state.stop is None:
        open_(t, spec, unit, "after", unit.output)
    else:
        finish(t, unit, StepState.SUCCEEDED)


# ---- ends --------------------------------------------------------------------------------


def set_output(
    unit: StepRecord, output: Any, preview: str | None, artifact: dict[str, Any] | None
) -> None:
    unit.output = output
    unit.has_output = True
    unit.artifact = artifact
    unit.preview = preview


def finish(
    t: Turn,
    unit: StepRecord,
    final: StepState,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    unit.state = final
    unit.phase = "done"
    unit.ended_at = t.now
    unit.next_at = None
    if reason is not None:
        unit.reason = reason
    if error is not None:
        unit.error = error
    if final == StepState.SUCCEEDED:
        t.state.seq += 1
        unit.completed_seq = t.state.seq


def fail(t: Turn, spec: StepSpec, unit: StepRecord, error: str) -> None:
    finish(t, unit, StepState.FAILED, error=error)
    if spec.on_error == "fail" and t.state.stop is None:
        what = (
            f"step {spec.id!r}" if unit.index is None else f"item {unit.index} of step {spec.id!r}"
        )
        t.state.stop = Stop(kind="failed", message=f"{what} failed: {error}")


def plan_digest(definition: dict[str, Any] | None) -> str | None:
    return digest_of(definition) if definition is not None else None
