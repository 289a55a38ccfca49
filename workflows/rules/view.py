"""What the outside sees of a run's state: its run state, who it waits for, the bounded status
view, audit pages, inbox lines and Web UI details. Pure functions of the state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from activities.masking import mask
from workflows.language.definition import PRIORITIES, ApprovalSpec, Definition
from workflows.models import (
    AuditEntry,
    AuditPage,
    GateSummary,
    GateView,
    ItemView,
    IterationView,
    Principal,
    Progress,
    RunStatus,
    StepView,
)
from workflows.names import RunState
from workflows.rules.gates import gate_spec
from workflows.rules.state import GateRecord, RunData, StepRecord
from workflows.rules.votes import GATE_STATE, STOP, live

PREVIEW_CHARS = 2_048
# Larger subjects are left out of the inbox line (the status has them).
MEMO_SUBJECT_CHARS = 1_024
# Audit entries the status carries; the rest is paged through with the `audit` query.
STATUS_AUDIT = 20


@dataclass(frozen=True)
class RunFacts:
    workflow_id: str
    run_id: str
    requester: Principal | None
    approval_mode: str


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
    return [u.gate for u in state.units() if u.gate is not None and u.gate.open]


def awaiting(state: RunData) -> list[str]:
    """Exactly the principals who may decide one of the run's own open gates."""
    return sorted({p for g in own_open(state) for p in g.approvers})


def gate_view(g: GateRecord, spec: ApprovalSpec, *, with_subject: bool) -> GateView:
    votes = live(g)
    return GateView(
        gate=g.gate,
        step=g.step,
        item=g.item,
        priority=g.priority,
        stage=g.stage,
        state=GATE_STATE[g.outcome] if g.outcome is not None else "open",
        round=g.round,
        approvers=g.approvers,
        escalated=g.escalated,
        quorum=spec.quorum,
        approvals=[v for v in votes if v.action not in STOP],
        rejections=[v for v in votes if v.action in STOP],
        lapsed=len(g.votes) - len(votes),
        actions=list(spec.actions()),
        digest=g.digest,
        review=g.review if g.review is not None else spec.review,
        subject=mask(g.subject) if with_subject else None,
        modified=g.modified,
        reminders=g.reminders,
        opened_at=g.opened_at,
        deadline=g.deadline,
        decided_at=g.decided_at,
        outcome=g.outcome,
        decided_by=g.decided_by[-1] if g.decided_by else None,
    )


def gate_summary(g: GateRecord, spec: ApprovalSpec) -> GateSummary:
    """The inbox line: the subject only when its JSON is small."""
    subject = mask(g.subject)
    small = len(json.dumps(subject, default=str)) <= MEMO_SUBJECT_CHARS
    return GateSummary(
        gate=g.gate,
        stage=g.stage,
        round=g.round,
        approvers=g.approvers,
        actions=list(spec.actions()),
        voted=[v.actor for v in live(g)],
        digest=g.digest,
        review=g.review if g.review is not None else spec.review,
        subject=subject if small else None,
        subject_truncated=not small,
        opened_at=g.opened_at,
        deadline=g.deadline,
        quorum=spec.quorum,
        priority=g.priority,
    )


def open_summaries(state: RunData, d: Definition) -> list[GateSummary]:
    """Every open gate's inbox line, the most urgent first, then the oldest."""
    lines = [gate_summary(g, spec) for g, spec in _specced(state, d)]
    return sorted(lines, key=lambda s: (PRIORITIES.index(s.priority), s.opened_at))


def _specced(state: RunData, d: Definition) -> list[tuple[GateRecord, ApprovalSpec]]:
    """Each open gate of the run with the spec it follows."""
    return [(g, spec) for g in own_open(state) if (spec := gate_spec(d, g)) is not None]


def child_gate_view(workflow_id: str | None, s: GateSummary) -> GateView:
    """A child run's open gate as its parent shows it, named by the child's workflow id."""
    return GateView(
        gate=s.gate,
        workflow_id=workflow_id,
        stage=s.stage,
        state="open",
        round=s.round,
        approvers=s.approvers,
        quorum=s.quorum,
        actions=s.actions,
        digest=s.digest,
        review=s.review,
        subject=s.subject,
        opened_at=s.opened_at,
        deadline=s.deadline,
        priority=s.priority,
    )


def step_view(s: StepRecord, d: Definition) -> StepView:
    spec = d.step(s.id)
    duration = (
        int((s.ended_at - s.started_at).total_seconds() * 1000)
        if s.started_at and s.ended_at
        else None
    )
    # An open gate's subject is shown once, under open_gates.
    gate = _unit_gate(s, d)
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
        error=s.error,
        reason=s.reason,
        output_preview=s.preview if s.preview is not None else _output_preview(s),
        artifact=s.artifact,
        gate=gate,
        compensation=s.compensation,
        items=[_item_view(i, d) for i in s.items] if s.items is not None else None,
        iterations=[
            IterationView(
                n=i.n, ok=i.ok, until=i.until, output_preview=i.preview, error=i.error, at=i.at
            )
            for i in s.iterations
        ]
        if spec.repeat is not None
        else None,
        plan=mask(s.plan.definition) if s.plan is not None else None,
        plan_errors=s.plan.errors if s.plan is not None else None,
    )


def _item_view(i: StepRecord, d: Definition) -> ItemView:
    gate = _unit_gate(i, d)
    return ItemView(
        index=i.index or 0,
        state=i.state.value,
        attempts=i.attempts,
        started_at=i.started_at,
        ended_at=i.ended_at,
        error=i.error,
        reason=i.reason,
        output_preview=i.preview if i.preview is not None else _output_preview(i),
        gate=gate,
    )


def _unit_gate(u: StepRecord, d: Definition) -> GateView | None:
    """A unit's latest gate; its subject only once decided (an open one's is under open_gates)."""
    spec = gate_spec(d, u.gate) if u.gate is not None else None
    if u.gate is None or spec is None:
        return None
    return gate_view(u.gate, spec, with_subject=not u.gate.open)


def _output_preview(s: StepRecord) -> str | None:
    return preview(s.output) if s.has_output else None


def status(state: RunData, d: Definition, facts: RunFacts) -> RunStatus:
    """The bounded status: each subject once, the latest audit entries and the counts."""
    steps = [step_view(s, d) for s in state.steps.values()]
    done = sum(s.phase == "done" for s in state.steps.values())
    total = len(state.steps)
    own = [gate_view(g, spec, with_subject=True) for g, spec in _specced(state, d)]
    children = [child_gate_view(c.workflow_id, g) for c in state.children.values() for g in c.gates]
    return RunStatus(
        workflow_id=facts.workflow_id,
        run_id=facts.run_id,
        state=run_state(state).value,
        pipeline=d.name,
        version=d.version,
        requester=facts.requester,
        approval_mode=facts.approval_mode,
        started_at=state.started_at,
        revision=state.revision,
        paused=state.paused,
        steps=steps,
        progress=Progress(done=done, total=total, percent=round(100.0 * done / total, 1)),
        open_gates=own + children,
        output=mask(state.output),
        error=state.error,
        audit=state.audit[-STATUS_AUDIT:],
        audit_total=state.audit_total,
        continued=state.generation,
    )


def audit_page(state: RunData, after: int, limit: int) -> AuditPage:
    """Entries after `after` still kept in the state; older ones are named as archived chunks."""
    page = page_of(state.audit, state.audit_total, after, limit)
    page.archived = [a for a in state.archives if a.last_seq > after]
    return page


def page_of(entries: list[AuditEntry], total: int, after: int, limit: int) -> AuditPage:
    kept = [e for e in entries if (e.seq or 0) > after][:limit]
    last = kept[-1].seq if kept else None
    return AuditPage(
        entries=kept,
        total=total,
        next_after=last if last is not None and last < total else None,
    )


def notification(
    gate: GateRecord,
    spec: ApprovalSpec,
    d: Definition,
    workflow_id: str,
    event: str,
    link_base: str,
) -> str:
    """What approvers are told when a gate opens, escalates or reminds them."""
    link = f"{link_base.rstrip('/')}/workflows/{workflow_id}" if link_base else ""
    deadline = gate.deadline.isoformat() if gate.deadline else "none"
    return (
        f"[{event}] {d.name} v{d.version}, run {workflow_id}: gate {gate.gate!r} waits at its "
        f"{gate.stage} stage for {', '.join(gate.approvers)}. Review: "
        f"{gate.review or spec.review or preview(gate.subject, 300)}. Deadline: {deadline}. "
        f"{link}"
    ).strip()


def details(state: RunData, d: Definition) -> str:
    """Markdown the Temporal Web UI shows as the run's current details."""
    lines = [f"**{run_state(state).value}** · {d.name} v{d.version}"]
    for s in state.steps.values():
        mark = ""
        if s.gate is not None and s.gate.open:
            mark = f" — waiting for {', '.join(s.gate.approvers)}"
        lines.append(f"- `{s.id}`: {s.state.value}{mark}")
    for c in state.children.values():
        for g in c.gates:
            lines.append(
                f"- child `{c.workflow_id}` gate `{g.gate}`: waiting for {', '.join(g.approvers)}"
            )
    return "\n".join(lines)
