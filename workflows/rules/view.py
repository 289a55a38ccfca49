"""What the outside sees of a run's state, one thing at a time: its run state, who it waits for,
a gate, a step, an item, an audit entry (each within the `Bounds` it is shown with), inbox lines
and Web UI details. Pure functions of the state; the status is in summary.py, pages in pages.py."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from activities.masking import mask
from workflows.language.definition import ApprovalSpec, Definition
from workflows.models import (
    GateSummary,
    GateView,
    ItemView,
    IterationView,
    StepView,
    Vote,
)
from workflows.names import RunState
from workflows.rules.agent_view import agent_view
from workflows.rules.bounds import (
    BRIEF,
    PAGE,
    PAGE_BYTES,
    PAGE_LADDER,
    PREVIEW_CHARS,
    ROLES,
    Bounds,
    clip,
    names,
    shown,
    small,
)
from workflows.rules.gates import gate_spec
from workflows.rules.inbox import MEMO_SUBJECT_CHARS as MEMO_SUBJECT_CHARS
from workflows.rules.inbox import gate_summary as gate_summary
from workflows.rules.inbox import open_summaries as open_summaries
from workflows.rules.inbox import specced as specced
from workflows.rules.state import GateRecord, Iteration, RunData, StepRecord
from workflows.rules.votes import GATE_STATE, STOP, live, shown_as

# Votes an open gate's line in the Web UI's details names at most.
DETAIL_VOTES = 5
# Before anything moved.
NEVER = datetime.min.replace(tzinfo=UTC)


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    text = json.dumps(mask(value), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_state(state: RunData) -> RunState:
    if state.closed is not None:
        return state.closed
    if state.paused:
        return RunState.PAUSED
    if own_open(state) or any(c.gates for c in state.children.values()):
        return RunState.WAITING
    return RunState.RUNNING


def own_open(state: RunData) -> list[GateRecord]:
    """The run's own open gates: its steps', its items' and its agents' calls'."""
    return [g for _, g in state.gates() if g.open]


def awaiting(state: RunData) -> list[str]:
    """Exactly the principals who may decide one of the run's own open gates."""
    return sorted({p for g in own_open(state) for p in g.approvers})


def gate_state(g: GateRecord) -> str:
    return GATE_STATE[g.outcome] if g.outcome is not None else "open"


def gate_view(
    g: GateRecord, spec: ApprovalSpec, b: Bounds = PAGE, *, with_subject: bool
) -> GateView:
    """A gate with its latest votes of each kind; its subject when asked for and small enough."""
    votes = live(g)
    go = [v for v in votes if v.action not in STOP]
    stop = [v for v in votes if v.action in STOP]
    subject, cut = small(mask(g.subject), b.value) if with_subject else (None, False)
    return GateView(
        gate=g.gate,
        step=g.step,
        item=g.item,
        priority=g.priority,
        stage=g.stage,
        state=gate_state(g),
        round=g.round,
        approvers=names(g.approvers),
        escalated=g.escalated,
        quorum=spec.quorum,
        approvals=[vote_view(v, b) for v in _latest(go, b.votes)],
        rejections=[vote_view(v, b) for v in _latest(stop, b.votes)],
        approvals_total=len(go),
        rejections_total=len(stop),
        lapsed=len(g.votes) - len(votes),
        actions=list(spec.actions()),
        digest=g.digest,
        review=clip(g.review if g.review is not None else spec.review, b.text),
        subject=subject,
        subject_truncated=cut,
        modified=g.modified,
        reminders=g.reminders,
        opened_at=g.opened_at,
        deadline=g.deadline,
        decided_at=g.decided_at,
        outcome=g.outcome,
        decided_by=clip(_decider(g), b.text),
        form=spec.form if b.value else None,
        response=small(g.response, b.value)[0],
    )


def _decider(g: GateRecord) -> str | None:
    """Who decided last, as `bob for alice` when a delegate's vote decided."""
    if not g.decided_by:
        return None
    last = g.decided_by[-1]
    for_ = next((v.on_behalf_of for v in reversed(g.votes) if v.actor == last), None)
    return shown_as(last, for_)


def answer(g: GateRecord, spec: ApprovalSpec) -> GateView:
    """What a decision returns: the gate with its subject, as much of it as fits a page (in
    brief, past every form, the subject is left out and marked so)."""
    got = shown(lambda b: gate_view(g, spec, with_subject=True, b=b), PAGE_LADDER, PAGE_BYTES)
    return got[0] if got is not None else gate_view(g, spec, with_subject=True, b=BRIEF)


def vote_view(v: Vote, b: Bounds) -> Vote:
    patch, cut = small(v.patch, b.value)
    return v.model_copy(
        update={
            "actor": clip(v.actor, b.text),
            "roles": names(v.roles, ROLES),
            "comment": clip(v.comment, b.text),
            "patch": patch,
            "patch_truncated": cut or v.patch_truncated,
            "response": small(v.response, b.value)[0],
        }
    )


def _latest(seq: list[Any], n: int) -> list[Any]:
    return seq[-n:] if n > 0 else []


def child_gate_view(workflow_id: str | None, s: GateSummary, b: Bounds = PAGE) -> GateView:
    """A child run's open gate as its parent shows it, named by the child's workflow id."""
    return GateView(
        gate=s.gate,
        workflow_id=workflow_id,
        stage=s.stage,
        state="open",
        round=s.round,
        approvers=names(s.approvers),
        quorum=s.quorum,
        actions=s.actions,
        digest=s.digest,
        review=clip(s.review, b.text),
        subject=s.subject if b.value else None,
        subject_truncated=s.subject_truncated or (s.subject is not None and not b.value),
        opened_at=s.opened_at,
        deadline=s.deadline,
        priority=s.priority,
        form=s.form if b.value else None,
    )


def step_view(s: StepRecord, d: Definition, b: Bounds = PAGE) -> StepView:
    """A step with its latest items or iterations (brief) and how many there are in each state."""
    spec = d.step(s.id)
    duration = (
        int((s.ended_at - s.started_at).total_seconds() * 1000)
        if s.started_at and s.ended_at
        else None
    )
    plan, cut = small(mask(s.plan.definition), b.value) if s.plan is not None else (None, False)
    repeats = spec.repeat is not None
    return StepView(
        id=s.id,
        tool=spec.resolved_tool or spec.tool,
        pipeline=spec.pipeline
        if isinstance(spec.pipeline, str) or spec.pipeline is None
        else "(plan)",
        state=s.state.value,
        attempts=s.attempts,
        started_at=s.started_at,
        ended_at=s.ended_at,
        duration_ms=duration,
        error=clip(s.error, b.text),
        reason=clip(s.reason, b.text),
        output_preview=_preview(s, b),
        artifact=s.artifact,
        gate=_unit_gate(s, d, b) if b.gates else None,
        compensation=s.compensation.model_copy(update={"error": clip(s.compensation.error, b.text)})
        if s.compensation is not None
        else None,
        items=[item_view(i, d, BRIEF) for i in latest(s.items, b.units)]
        if s.items is not None
        else None,
        items_total=len(s.items) if s.items is not None else None,
        item_counts=dict(Counter(i.state.value for i in s.items)) if s.items is not None else None,
        iterations=[iteration_view(i, BRIEF) for i in _latest(s.iterations, b.units)]
        if repeats
        else None,
        iterations_total=len(s.iterations) if repeats else None,
        plan=plan,
        plan_truncated=cut,
        plan_errors=[clip(e, b.text) or "" for e in s.plan.errors[: b.units or 1]]
        if s.plan is not None
        else None,
        agent=agent_view(s.agent, spec, b) if s.agent is not None else None,
    )


def item_view(i: StepRecord, d: Definition, b: Bounds = PAGE) -> ItemView:
    return ItemView(
        index=i.index or 0,
        state=i.state.value,
        attempts=i.attempts,
        started_at=i.started_at,
        ended_at=i.ended_at,
        error=clip(i.error, b.text),
        reason=clip(i.reason, b.text),
        output_preview=_preview(i, b),
        gate=_unit_gate(i, d, b) if b.gates else None,
    )


def iteration_view(i: Iteration, b: Bounds = PAGE) -> IterationView:
    return IterationView(
        n=i.n,
        ok=i.ok,
        until=i.until,
        output_preview=clip(i.preview, b.preview),
        error=clip(i.error, b.text),
        at=i.at,
    )


def moved(u: StepRecord) -> datetime:
    """When a unit last moved: started, ended, its gate opened or decided (NEVER: not yet)."""
    last = u.ended_at or u.started_at or NEVER
    g = u.gate
    if g is not None:
        last = max(last, g.decided_at or g.opened_at)
    return last


def latest(units: list[StepRecord], n: int) -> list[StepRecord]:
    """The `n` units that moved last (of those that never moved, the first), in their order."""
    if len(units) <= n:
        return list(units)
    ranked = sorted(range(len(units)), key=lambda k: (moved(units[k]), -k), reverse=True)
    return [units[k] for k in sorted(ranked[:n])]


def _unit_gate(u: StepRecord, d: Definition, b: Bounds) -> GateView | None:
    """A unit's latest gate; its subject only once decided (an open one's is under open_gates)."""
    spec = gate_spec(d, u.gate) if u.gate is not None else None
    if u.gate is None or spec is None:
        return None
    return gate_view(u.gate, spec, with_subject=not u.gate.open, b=b)


def _preview(s: StepRecord, b: Bounds) -> str | None:
    if s.preview is not None:
        return clip(s.preview, b.preview)
    return preview(s.output, b.preview) if s.has_output else None


def notification(
    gate: GateRecord, spec: ApprovalSpec, d: Definition, workflow_id: str, event: str
) -> str:
    """What approvers are told when a gate opens, escalates or reminds them, or that it was
    decided. No link: the notify tool adds the one each recipient may have (docs/gates.md)."""
    head = f"[{event}] {d.name} v{d.version}, run {workflow_id}: gate {gate.gate!r}"
    if event == "decided":
        return f"{head} at its {gate.stage} stage: {gate_state(gate)} by {_decider(gate)}."
    deadline = gate.deadline.isoformat() if gate.deadline else "none"
    return (
        f"{head} waits at its {gate.stage} stage for {', '.join(gate.approvers)}. Review: "
        f"{gate.review or spec.review or preview(gate.subject, 300)}. Deadline: {deadline}."
    )


def _voted(g: GateRecord) -> str:
    """The votes so far on what an open gate shows, the first DETAIL_VOTES of them."""
    votes = live(g)
    shown = [f"{shown_as(v.actor, v.on_behalf_of)} {v.action}" for v in votes[:DETAIL_VOTES]]
    more = f" and {len(votes) - DETAIL_VOTES} more" if len(votes) > DETAIL_VOTES else ""
    return f" (voted: {', '.join(shown)}{more})" if votes else ""


def details(state: RunData, d: Definition) -> str:
    """Markdown the Temporal Web UI shows as the run's current details."""
    lines = [f"**{run_state(state).value}** · {d.name} v{d.version}"]
    for s in state.steps.values():
        waits = [
            ("waiting" if g.call is None else f"`{g.gate}` waits")
            + f" for {', '.join(g.approvers)}"
            + _voted(g)
            for g in s.gates()
            if g.open
        ]
        lines.append(f"- `{s.id}`: {s.state.value}" + "".join(f" — {w}" for w in waits))
    for c in state.children.values():
        for g in c.gates:
            lines.append(
                f"- child `{c.workflow_id}` gate `{g.gate}`: waiting for {', '.join(g.approvers)}"
            )
    return "\n".join(lines)
