"""A unit's gates: whether it has one at a stage, opening it (review text, priority, automatic
approval), and what the unit does once the gate is decided. Pure."""

from __future__ import annotations

from typing import Any

from workflows.language import expr
from workflows.language.definition import PRIORITIES, ApprovalSpec, Stage, StepSpec
from workflows.language.durations import parse_duration
from workflows.language.refs import RefError, Scope
from workflows.models import AuditEntry
from workflows.names import StepState
from workflows.rules.gates import Notify, open_gate
from workflows.rules.outcomes import finish
from workflows.rules.state import Outcome, StepRecord
from workflows.rules.turn import Turn, step_of, truthy
from workflows.rules.votes import SYSTEM_ACTOR, close


def gate_at(spec: StepSpec, unit: StepRecord, stage: Stage) -> ApprovalSpec | None:
    """The approval spec of this unit's own gate at `stage`, if it has one (a for_each step's
    gate is either over the whole list or per item, never both)."""
    approval = spec.approval
    if approval is None or approval.stage != stage:
        return None
    if spec.for_each is not None and approval.per_item != (unit.index is not None):
        return None
    return approval


def open_(t: Turn, approval: ApprovalSpec, unit: StepRecord, stage: Stage, subject: Any) -> None:
    """Open the unit's gate on `subject`; it decides itself at once when the run is in auto
    mode or its `auto_approve_if` holds, else its approvers are told."""
    gate = open_gate(unit, approval, stage, subject, t.now)
    gate.step, gate.item = step_of(unit), unit.index
    scope = t.scope(unit, output=unit.output) if stage != "before" else t.scope(unit)
    gate.review, gate.priority = review_of(approval, scope), priority_of(approval, scope)
    reason = _auto(t, approval, unit, stage, scope)
    if reason is None:
        t.effects.append(Notify(unit.id, gate.gate, "opened"))
        return
    outcome: Outcome = "reject" if stage == "on_failure" else "approve"
    close(gate, outcome, [SYSTEM_ACTOR], t.now, None)
    t.state.record(
        AuditEntry(at=t.now, kind="auto_approve", gate=gate.gate, action=outcome, reason=reason)
    )


def review_of(approval: ApprovalSpec, scope: Scope) -> str | None:
    if approval.review is None:
        return None
    try:
        return str(scope.resolve(approval.review))
    except RefError as err:
        return f"{approval.review} (references not resolved: {err})"


def priority_of(approval: ApprovalSpec, scope: Scope) -> Any:
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


def review_or_succeed(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """A unit's output is in: its after gate reviews it, unless it has none or the run stopped,
    and then it has succeeded."""
    approval = gate_at(spec, unit, "after")
    if approval is not None and t.state.stop is None:
        open_(t, approval, unit, "after", unit.output)
    else:
        finish(t, unit, StepState.SUCCEEDED)


def void_if_stale(t: Turn, spec: StepSpec, unit: StepRecord) -> bool:
    """A before gate's approval older than its `decision_valid_for` when the unit's call would
    start (it waited for a slot) is void: the gate opens again as a new round on what it showed
    (the votes stay behind in the old round), the audit says why, the approvers are told again.
    Whether it did."""
    gate, approval = unit.gate, gate_at(spec, unit, "before")
    # A unit is queued only once its gate went on (approve or modify, at a before gate).
    if gate is None or gate.decided_at is None or approval is None:
        return False
    if approval.decision_valid_for is None:
        return False
    age, limit = t.now - gate.decided_at, parse_duration(approval.decision_valid_for)
    if age <= limit:
        return False
    t.state.record(
        AuditEntry(
            at=t.now,
            kind="void",
            gate=gate.gate,
            action=gate.outcome,
            reason=f"the {gate.outcome} of {gate.decided_at.isoformat()} is "
            f"{int(age.total_seconds())}s old when the step would start, past "
            f"decision_valid_for {approval.decision_valid_for}: the gate opens again "
            f"(round {unit.round + 1})",
        )
    )
    unit.round += 1
    open_(t, approval, unit, "before", gate.subject)
    return True
