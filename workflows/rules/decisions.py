"""A decision arriving at a pipeline run: which gate it is for, whether it may be cast, and its
trace in the audit. The same functions serve the update, its validator and the signal; a governed
run's review gate uses `entry` and `refuse` too (workflows/rules/governed.py).

A decision is admitted when it arrives (the update's validator, or a signal's handler) and again
inside `apply`, at the moment it is cast: other decisions delivered in the same workflow task, or
while a patch was being checked, may have closed the gate or cast the same principal's vote."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from activities.masking import mask
from activities.models import CheckCall, Slot
from workflows.language.agent import function_name
from workflows.language.definition import ApprovalSpec, Definition
from workflows.models import AuditEntry, Decision, GateRefusal, Principal, Vote
from workflows.rules import forms, votes
from workflows.rules.agent_state import Fixed
from workflows.rules.gates import gate_spec
from workflows.rules.state import GateRecord, RunData, StepRecord, Trail

Via = Literal["signal", "update"]
Admitted = tuple[StepRecord, GateRecord, ApprovalSpec]


def _refusal(code: str, message: str) -> GateRefusal:
    return GateRefusal(code=code, message=message)


def find_gate(state: RunData, d: Definition, gate_id: str) -> Admitted | GateRefusal:
    """The open gate `gate_id` names, or why there is none."""
    if ".call-" in gate_id:
        return _call_gate(state, d, gate_id)
    step = state.unit(gate_id)
    spec = gate_spec(d, step.gate) if step is not None and step.gate is not None else None
    has_gate = step is not None and d.step(gate_id.partition(".")[0]).approval is not None
    if step is None or not has_gate:
        for child in state.children.values():
            if any(g.gate == gate_id for g in child.gates):
                return _refusal(
                    "unknown_gate",
                    f"gate {gate_id!r} belongs to child run {child.workflow_id!r}: decide it there",
                )
        return _refusal("unknown_gate", f"run has no gate {gate_id!r}")
    gate = step.gate
    if gate is None or not gate.open or spec is None:
        shown = gate.outcome if gate is not None else "not open yet"
        return _refusal(
            "gate_not_open", f"gate {gate_id!r} is not open ({shown}); step is {step.state.value}"
        )
    return step, gate, spec


def _call_gate(state: RunData, d: Definition, gate_id: str) -> Admitted | GateRefusal:
    """An agent call's gate: it exists once the call waits for a decision."""
    found = state.gate(gate_id)
    if found is None:
        return _refusal("unknown_gate", f"run has no gate {gate_id!r}")
    step, gate = found
    spec = gate_spec(d, gate)
    if not gate.open or spec is None:
        return _refusal("gate_not_open", f"gate {gate_id!r} is not open ({gate.outcome})")
    return step, gate, spec


def barred(state: RunData, spec: ApprovalSpec) -> set[str]:
    """Principals who voted to go on at a gate this one must be distinct from."""
    out: set[str] = set()
    for other in spec.distinct_from:
        step = state.steps.get(other)
        for unit in [step, *(step.items or [])] if step is not None else []:
            out |= set(unit.approvers_seen)
            if unit.gate is not None:
                out |= votes.go_on_voters(unit.gate)
    return out


def admit(
    state: RunData,
    d: Definition,
    decision: Decision,
    requester: Principal | None,
    now: datetime,
) -> Admitted | GateRefusal:
    """The open gate `decision` may be cast on, or the refusal (its code maps to HTTP); `now`
    judges the decider's delegations."""
    found = find_gate(state, d, decision.gate)
    if isinstance(found, GateRefusal):
        return found
    step, gate, spec = found
    refusal = votes.check(gate, spec, decision, requester, barred(state, spec), now)
    if refusal is None and gate.call is not None:
        refusal = fixed_kept(step, gate, decision)
    if refusal is None:
        wrong = forms.refusal(spec.form, gate.gate, decision.action, decision.response)
        refusal = _refusal("bad_response", wrong) if wrong is not None else None
    return refusal if refusal is not None else found


def fixed_kept(step: StepRecord, gate: GateRecord, decision: Decision) -> GateRefusal | None:
    """An approver's patch leaves the arguments the step fixes as they are, like the model."""
    changes = decision.patch.get("arguments") if isinstance(decision.patch, dict) else None
    fixed = _fixed(step, gate)
    asked: dict[str, Any] = changes if isinstance(changes, dict) else {}
    moved = sorted(k for k in asked if k in fixed.args and asked[k] != fixed.args[k])
    if not moved:
        return None
    return _refusal(
        "bad_patch",
        f"the step fixes {', '.join(f'arguments.{k}' for k in moved)} of calls to {gate.tool}: "
        "a patch cannot change them",
    )


def _fixed(step: StepRecord, gate: GateRecord) -> Fixed:
    record = step.agent
    found = record.fixed.get(function_name(gate.tool or "")) if record is not None else None
    return found or Fixed()


def check_call(
    d: Definition, admitted: Admitted | GateRefusal, decision: Decision
) -> CheckCall | None:
    """The check a patch needs before its vote counts: would the tool's input (or output) still
    be valid with it, and would the secrets the step holds still go where they may? A patch that
    would leave the step unable to run, or send a secret elsewhere, is refused when sent."""
    if not isinstance(admitted, tuple) or not isinstance(decision.patch, dict):
        return None
    step, gate, _ = admitted
    spec = d.step(gate.step)
    tool = spec.resolved_tool or spec.tool
    if gate.call is not None:
        # The call's arguments as the approver would have them run, against its tool's model.
        before = gate.subject.get("arguments")
        value = votes.proposed(gate, decision).get("arguments")
        return _input_check(d, value, gate.tool, before, _fixed(step, gate).slots, "arguments")
    if decision.action == "retry" or (decision.action == "modify" and gate.stage == "before"):
        value = votes.merge_patch(step.args, decision.patch)
        if spec.pipeline:
            return None  # the child's input is checked against its schema when it starts
        return _input_check(d, value, tool, step.args, step.slots, "patched input")
    if tool is None:
        return None  # a child pipeline's output has no declared shape to check against
    value = votes.proposed(gate, decision) if decision.action == "modify" else decision.patch
    return CheckCall(value=value, tool=tool, part="output", where="patched output")


def _input_check(
    d: Definition, value: Any, tool: str | None, before: Any, slots: list[Slot], where: str
) -> CheckCall:
    """A patched input checked against the tool's input model, and where its secrets would go."""
    secret_slots = [s for s in slots if s.parts is not None]
    if not secret_slots:
        return CheckCall(value=value, tool=tool, where=where)
    names = {text for s in secret_slots for kind, text in s.parts or () if kind == "secret"}
    return CheckCall(
        value=value,
        tool=tool,
        where=where,
        before=before,
        slots=secret_slots,
        secrets={n: d.binding(n) for n in sorted(names)},
    )


def bad_patch(decision: Decision, issues: list[str]) -> GateRefusal:
    return _refusal(
        "bad_patch",
        f"{decision.action} refused: the patch would leave the step invalid: " + "; ".join(issues),
    )


def apply(
    state: RunData,
    d: Definition,
    decision: Decision,
    requester: Principal | None,
    now: datetime,
    via: Via,
    issues: list[str] | None = None,
) -> Admitted | GateRefusal:
    """Cast `decision` if its gate takes it now, else the refusal (recorded in the audit when it
    came by signal: a refused update leaves no trace in history). `issues`: what the check of
    its patch found wrong, if it needed one."""
    admitted = admit(state, d, decision, requester, now)
    if isinstance(admitted, tuple) and issues:
        admitted = bad_patch(decision, issues)
    if isinstance(admitted, GateRefusal):
        if via == "signal":
            refuse(state, decision, admitted, now, via)
        return admitted
    _, gate, spec = admitted
    # The answers as kept: over the form's defaults.
    decision = decision.model_copy(update={"response": forms.kept(spec.form, decision.response)})
    vote = votes.cast(gate, spec, decision, now)
    state.record(entry(decision, now, via, "accepted", vote=vote))
    return admitted


def refuse(state: Trail, decision: Decision, refusal: GateRefusal, now: datetime, via: Via) -> None:
    state.record(entry(decision, now, via, "refused", f"{refusal.code}: {refusal.message}"))


def entry(
    d: Decision,
    at: datetime,
    via: Via,
    outcome: Literal["accepted", "refused"],
    reason: str | None = None,
    vote: Vote | None = None,
) -> AuditEntry:
    """A decision's audit entry: who (for whom, as a delegate), what, where from, and whether it
    was cast."""
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
        response=mask(d.response),
        outcome=outcome,
        reason=reason,
        via=via,
        on_behalf_of=vote.on_behalf_of if vote is not None else None,
        channel=d.channel,
    )
