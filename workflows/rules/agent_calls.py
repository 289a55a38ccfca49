"""One call an agent's model asked for, through its phases: proposed (refused at once when it
names no tool offered, is not an object, or sets an argument the step fixes), checked against its
tool's input model, decided (denied, run, let through by a grant, or gated), run, and told to
the model. Every decision and its reason goes to the audit. Pure."""

from __future__ import annotations

from typing import Any

from activities.models import AgentCheckResult, CallToCheck
from workflows.language.definition import StepSpec
from workflows.language.limits import (
    AGENT_RESULT_INLINE_BYTES,
    MAX_CALLS_PER_TURN,
    MIN_PREVIEW_BYTES,
)
from workflows.models import AuditEntry
from workflows.rules import agent_policy as policy
from workflows.rules import agent_transcript as talk
from workflows.rules.agent_state import AgentCall, AgentRecord
from workflows.rules.gates import Notify, new_gate
from workflows.rules.records import Result
from workflows.rules.state import RunData, StepRecord, Stop
from workflows.rules.turn import CallTool, Turn
from workflows.rules.unit_gates import priority_of, review_of
from workflows.rules.votes import STOP, SYSTEM_ACTOR, close, digest_of, go_on_voters, live

# What a call's id and function name keep of what the model sent.
ID_CHARS = 100


def propose(
    t: Turn, spec: StepSpec, unit: StepRecord, rec: AgentRecord, raw: dict[str, Any], k: int
) -> AgentCall:
    """A call the model asked for, refused at once if it cannot be a call of an offered tool."""
    n = len(rec.calls) + 1
    function = str(raw.get("name") or "")[:ID_CHARS]
    call_id = str(raw.get("id") or f"call_{n}")[:ID_CHARS]
    args = raw.get("arguments")
    name = f"{unit.id}.call-{n}"
    call = AgentCall(n=n, name=name, turn=rec.turn, call_id=call_id, function=function)
    call.proposed = args
    rec.calls.append(call)
    agent = spec.agent
    entry = agent.entry(function) if agent is not None else None
    if k >= MAX_CALLS_PER_TURN:
        refuse(t, rec, call, f"at most {MAX_CALLS_PER_TURN} calls in one turn", error=False)
    elif entry is None or agent is None:
        offered = ", ".join(e.function for e in agent.tools) if agent is not None else ""
        refuse(t, rec, call, f"no tool {function!r} is offered (offered: {offered})")
    elif not isinstance(args, dict):
        refuse(t, rec, call, "the arguments must be a JSON object")
    else:
        fixed = rec.fixed.get(function)
        set_ = fixed.args if fixed is not None else {}
        moved = sorted(key for key in args if key in set_ and args[key] != set_[key])
        call.tool = entry.ref
        if moved:
            refuse(t, rec, call, f"the step fixes {', '.join(moved)}: a call cannot set them")
        else:
            call.arguments = {**args, **set_}
            call.slots = list(fixed.slots) if fixed is not None else []
    return call


def to_check(made: list[AgentCall]) -> list[CallToCheck]:
    return [
        CallToCheck(n=c.n, tool=c.tool or "", arguments=c.arguments or {})
        for c in made
        if c.state == "checking"
    ]


def decide_all(
    t: Turn, spec: StepSpec, unit: StepRecord, rec: AgentRecord, found: AgentCheckResult
) -> None:
    """Each checked call: refused with what is wrong with its arguments, else decided."""
    by_n = {c.n: c for c in found.calls}
    for call in rec.calls:
        if call.state != "checking":
            continue
        checked = by_n.get(call.n)
        if checked is None or checked.issues:
            issues = "; ".join(checked.issues) if checked else "the check did not answer"
            refuse(t, rec, call, f"the arguments do not fit {call.tool}: {issues}")
            continue
        decide(t, spec, unit, call, checked.risk)


def decide(t: Turn, spec: StepSpec, unit: StepRecord, call: AgentCall, risk: str) -> None:
    """Run it, let a grant through, open its gate, or deny it: before anything runs."""
    agent = spec.agent
    entry = agent.entry(call.function) if agent is not None else None
    if agent is None or entry is None or call.arguments is None:
        return
    call.risk = entry.risk or risk
    choice, why = policy.policy_of(agent, entry, call.risk, call.arguments)
    approval = policy.call_approval(spec, entry)
    if choice == "approve" and approval is None:
        choice, why = "deny", f"{why}, but no one is named to decide it"
    call.reason = why
    if choice == "deny":
        call.decision, call.state = "deny", "denied"
        _told(t, call, {"refused": f"denied by the step's policy: {why}"})
        _audit(t, call, "deny", why)
        return
    if choice == "auto" or approval is None:
        call.decision, call.state = "auto", "queued"
        _audit(t, call, "auto", why)
        return
    rules = policy.rules_of(approval)
    grant = policy.covering(t.state, call.tool or "", rules, call.arguments, t.now)
    if grant is not None:
        grant.used += 1
        call.decision, call.state, call.granted_by = "granted", "queued", policy.granted(grant)
        _audit(t, call, "grant", call.granted_by)
        return
    call.decision, call.state = "approve", "waiting"
    _audit(t, call, "approve", why)
    _open(t, unit, call, approval)


def _open(t: Turn, unit: StepRecord, call: AgentCall, approval: Any) -> None:
    """The call's gate: its subject is exactly the tool, its version and the arguments."""
    name, _, version = (call.tool or "").partition("@")
    subject = {"tool": name, "version": version, "arguments": call.arguments}
    gate = new_gate(call.name, unit.id, approval, "before", subject, t.now)
    gate.call, gate.tool = call.n, call.tool
    scope = t.scope(unit)
    gate.review, gate.priority = review_of(approval, scope), priority_of(approval, scope)
    call.gate = gate
    if t.ctx.approval_mode == "auto":
        close(gate, "approve", [SYSTEM_ACTOR], t.now, None)
        t.state.record(
            AuditEntry(
                at=t.now,
                kind="auto_approve",
                gate=gate.gate,
                action="approve",
                reason="run approval_mode is auto",
            )
        )
        return
    t.effects.append(Notify(unit.id, gate.gate, "opened"))


def move(t: Turn, spec: StepSpec, unit: StepRecord, call: AgentCall) -> bool:
    """A call moves on when its result is back, its gate decided, or (decided to run) it may."""
    if call.result is not None:
        _ended(t, unit.agent, call, call.result)
        return True
    if call.state == "waiting" and call.gate is not None and call.gate.outcome is not None:
        _decided(t, spec, unit, call)
        return True
    if call.state == "queued" and not t.hold and t.state.stop is None:
        entry = spec.agent.entry(call.function) if spec.agent is not None else None
        call.state, call.started_at = "running", t.now
        t.effects.append(
            CallTool(
                unit.id,
                call.n,
                call.tool or "",
                call.arguments or {},
                list(call.slots),
                bool(entry is not None and entry.local),
                AGENT_RESULT_INLINE_BYTES,
                MIN_PREVIEW_BYTES * 4,
            )
        )
        return True
    return False


def _decided(t: Turn, spec: StepSpec, unit: StepRecord, call: AgentCall) -> None:
    """Approved (perhaps modified, perhaps with a grant): it runs with what the gate shows now.
    Rejected (or skipped): the model is told, with the approvers' comments, and goes on.
    Cancelled: the run stops."""
    gate = call.gate
    if gate is None:
        return
    unit.approvers_seen = sorted(set(unit.approvers_seen) | go_on_voters(gate))
    who = ", ".join(gate.decided_by) or SYSTEM_ACTOR
    if gate.outcome in ("approve", "modify"):
        subject = gate.subject if isinstance(gate.subject, dict) else {}
        call.arguments = subject.get("arguments") or {}
        call.changed = gate.modified
        call.state = "queued"
        entry = spec.agent.entry(call.function) if spec.agent is not None else None
        approval = policy.call_approval(spec, entry) if entry is not None else None
        if approval is not None:
            made, why = policy.make_grant(t.state, gate, policy.rules_of(approval), t.now)
            _grant_audit(t, gate.gate, made, why)
        return
    comments = [v.comment for v in live(gate) if v.action in STOP and v.comment]
    said: dict[str, Any] = {"refused": f"{gate.outcome} at gate {gate.gate} by {who}"}
    if comments:
        said["comment"] = " / ".join(comments)
    call.state, call.ended_at = ("cancelled" if gate.outcome == "cancel" else "rejected"), t.now
    _told(t, call, said)
    if gate.outcome == "cancel" and t.state.stop is None:
        t.state.stop = Stop(kind="cancelled", message=f"run cancelled at a gate by {who}", by=who)


def _grant_audit(t: Turn, gate_id: str, made: Any, why: str | None) -> None:
    if made is None and why is None:
        return
    reason = (
        f"grant {made.id}: later calls of {made.tool} run without a gate until "
        f"{made.expires_at.isoformat()}" + (f" or {made.calls} calls" if made.calls else "")
        if made is not None
        else f"no grant made: {why}"
    )
    t.state.record(AuditEntry(at=t.now, kind="grant", gate=gate_id, action="grant", reason=reason))


def _ended(t: Turn, rec: AgentRecord | None, call: AgentCall, result: Result) -> None:
    """The tool came back: the model will be told its result, or its failure (an error)."""
    call.result = None
    call.attempts += result.attempts
    call.ended_at = t.now
    if result.cancelled:
        call.state = "cancelled"
        _told(t, call, {"error": "the call was cancelled"})
        return
    if not result.ok:
        call.state, call.error = "failed", result.error or "failed"
        if rec is not None:
            rec.tool_errors += 1
        _told(t, call, {"error": f"the tool failed: {call.error}"})
        return
    call.state, call.preview, call.artifact = "succeeded", result.preview, result.artifact
    comment = (
        next((v.comment for v in reversed(call.gate.votes) if v.comment), None)
        if (call.gate is not None and call.changed)
        else None
    )
    call.message = talk.tool_message(call, talk.result_content(call, result, comment), result)


def refuse(t: Turn, rec: AgentRecord, call: AgentCall, reason: str, *, error: bool = True) -> None:
    """Not a call that can run: the model is told why (an error, up to max_tool_errors)."""
    call.decision, call.state, call.reason, call.ended_at = "refused", "refused", reason, t.now
    if error:
        rec.tool_errors += 1
    _told(t, call, {"error": f"refused: {reason}"})
    _audit(t, call, "refuse", reason)


def cancel(t: Turn, call: AgentCall, reason: str) -> None:
    call.state, call.ended_at, call.error = "cancelled", t.now, reason
    _told(t, call, {"error": f"not run: {reason}"})


def _told(t: Turn, call: AgentCall, content: dict[str, Any]) -> None:
    call.message = talk.tool_message(call, content, None)


def _audit(t: Turn, call: AgentCall, action: str, reason: str) -> None:
    t.state.record(
        AuditEntry(
            at=t.now,
            kind="call",
            gate=call.name,
            action=action,
            reason=f"{call.function} ({call.tool or 'not offered'}): {reason}",
            digest=digest_of(call.arguments) if call.arguments is not None else None,
        )
    )


def tell(rec: AgentRecord) -> bool:
    """Every call of the turn ended: the model is told of each, in the order it asked. Calls of
    earlier turns keep their record but not their arguments (the transcript has them), so the
    state holds the arguments of two turns at most."""
    told = False
    for call in rec.calls:
        if call.message is not None:
            talk.ran(rec, call)
            talk.add(rec, call.message)
            call.message = None
            told = True
        elif call.turn < rec.turn and not call.compact:
            call.proposed = call.arguments = None
            call.slots, call.compact = [], True
            if call.gate is not None:
                call.gate.subject = None
    return told


def too_many_errors(spec: StepSpec, rec: AgentRecord) -> bool:
    return spec.agent is not None and rec.tool_errors > spec.agent.max_tool_errors


def errors_message(spec: StepSpec, rec: AgentRecord) -> str:
    bound = spec.agent.max_tool_errors if spec.agent is not None else 0
    last = next((c for c in reversed(rec.calls) if c.state in ("failed", "refused")), None)
    said = (
        f": the last, call {last.n} ({last.function}): {last.error or last.reason}" if last else ""
    )
    return (
        f"max_tool_errors ({bound}) exceeded: {rec.tool_errors} calls failed or were refused{said}"
    )


def returned(state: RunData, unit_id: str, n: int, result: Result) -> None:
    """A tool call came back (the shell's event)."""
    unit = state.unit(unit_id)
    rec = unit.agent if unit is not None and unit.phase == "agent" else None
    call = rec.call(n) if rec is not None else None
    if call is not None and call.out:
        call.result = result
