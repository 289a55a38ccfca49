"""The state of a governed run and the pure rules of its review gate: one serializable model the
GovernedWorkflow shell holds, the tier's gate, and the status the run shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.masking import mask
from activities.models import MemoryHit
from workflows.language.definition import ApprovalSpec
from workflows.language.policy import Policy, TierGate
from workflows.models import (
    AuditEntry,
    GateSummary,
    GateView,
    GovernedView,
    NotifyDefaults,
    Principal,
    Progress,
    RunStatus,
    Vote,
)
from workflows.rules import votes
from workflows.rules.risk import Assessment
from workflows.rules.state import GateRecord
from workflows.rules.view import child_gate_view

REVIEW_GATE = "review"
PHASES = ("plan", "review", "execute", "remember")
Phase = Literal["plan", "review", "execute", "remember", "completed", "failed", "cancelled"]
# How much of each tool's input schema the planner is shown.
SCHEMA_CHARS = 2_000


class ToolInfo(BaseModel):
    """A tool a plan may use, as the planner is told of it."""

    name: str
    version: str
    description: str
    risk: str
    input_schema: dict[str, Any] = Field(default_factory=dict)


class GovernedInput(BaseModel):
    request: str = Field(min_length=1, max_length=10_000)
    context: dict[str, Any] = Field(default_factory=dict)
    plan: dict[str, Any] | None = Field(None, description="a proposed plan; else the LLM plans")
    policy: Policy = Field(default_factory=Policy)
    requester: Principal | None = None
    tools: list[ToolInfo] = Field(default_factory=list, description="the tools a plan may use")
    notify: NotifyDefaults = Field(default_factory=NotifyDefaults)


class GovernedState(BaseModel):
    phase: Phase = "plan"
    started_at: datetime
    phase_started: datetime
    durations_ms: dict[str, int] = Field(default_factory=dict)
    plan: dict[str, Any] | None = None
    plan_source: Literal["given", "llm"] | None = None
    plan_attempts: int = 0
    plan_errors: list[str] = Field(default_factory=list)
    risks: dict[str, str] = Field(default_factory=dict)
    similar: list[MemoryHit] = Field(default_factory=list)
    assessment: Assessment | None = None
    gate: GateRecord | None = None
    tier_gate: TierGate | None = None
    decision: str | None = None
    child_workflow_id: str | None = None
    child_state: str | None = None
    child_gates: list[GateSummary] = Field(default_factory=list)
    error: str | None = None
    output: Any = None
    audit: list[AuditEntry] = Field(default_factory=list)
    audit_total: int = 0
    revision: int = 0

    def record(self, entry: AuditEntry) -> None:
        self.audit_total += 1
        self.audit.append(entry.model_copy(update={"seq": self.audit_total}))

    def enter(self, phase: Phase, now: datetime, reason: str | None = None) -> None:
        """Move to `phase`, timing the one left, and say so in the audit."""
        if self.phase in PHASES:
            spent = int((now - self.phase_started).total_seconds() * 1000)
            self.durations_ms[self.phase] = self.durations_ms.get(self.phase, 0) + spent
        self.record(AuditEntry(at=now, kind="lifecycle", action=f"phase:{phase}", reason=reason))
        self.phase, self.phase_started = phase, now


def approval(gate: TierGate) -> ApprovalSpec:
    """The review gate's rules for a tier: a plan is approved, amended, rejected or cancelled."""
    return ApprovalSpec(
        stage="before",
        approvers=list(gate.approvers),
        quorum=gate.quorum,
        rejections_to_reject=gate.rejections_to_reject,
        forbid_self_approval=gate.forbid_self_approval,
        allow=["approve", "reject", "modify", "cancel"],
        timeout=gate.timeout,
        on_timeout=gate.on_timeout if gate.timeout else "reject",
        review=gate.review or "Review the plan and its risk assessment",
    )


def subject(state: GovernedState) -> dict[str, Any]:
    """What the reviewers vote on: exactly this plan, with its assessment."""
    return {
        "plan": state.plan,
        "assessment": state.assessment.model_dump(mode="json") if state.assessment else None,
    }


def open_review(state: GovernedState, gate: TierGate, now: datetime) -> GateRecord:
    spec = approval(gate)
    subject_ = subject(state)
    record = GateRecord(
        gate=REVIEW_GATE,
        step=REVIEW_GATE,
        stage="before",
        round=0,
        subject=subject_,
        digest=votes.digest_of(subject_),
        opened_at=now,
        deadline=None,
        approvers=list(spec.approvers),
    )
    state.gate, state.tier_gate = record, gate
    return record


def amend(
    state: GovernedState,
    gate: TierGate | None,
    actor: str,
    roles: list[str],
    comment: str | None,
    now: datetime,
) -> None:
    """A modify replaced the plan (already checked and assessed into `state`): the gate shows the
    new subject (so earlier votes lapse), its approvers follow the new tier, and the modifier's
    vote counts for it only if they are one of the new tier's approvers (a peer who raises a plan
    to tier 3 cannot approve it for the elders). Tier 1 with automatic approval needs nobody else."""
    record = state.gate
    if record is None:  # only an open review is amended
        return
    subject_ = subject(state)
    record.subject, record.digest, record.modified = subject_, votes.digest_of(subject_), True
    if gate is not None:
        record.approvers = list(gate.approvers)
        state.tier_gate = gate
        counts = bool(votes.principals_of(actor, roles) & set(gate.approvers))
        if not counts:
            return
    record.votes.append(
        Vote(
            actor=actor, action="modify", comment=comment, at=now, roles=roles, digest=record.digest
        )
    )
    if gate is None:
        votes.close(record, "modify", [actor], now, None)
        return
    decided = votes.tally(record, approval(gate))
    if decided is not None:
        votes.close(record, decided[0], decided[1], now, None)


def view(
    state: GovernedState,
    inp: GovernedInput,
    workflow_id: str,
    run_id: str,
    run_state: str,
) -> RunStatus:
    """The run's status: the same shape as a pipeline's, its cycle under `governed`."""
    gates: list[GateView] = []
    if state.gate is not None and state.gate.open and state.tier_gate is not None:
        spec = approval(state.tier_gate)
        gates.append(gate_view(state.gate, spec))
    gates += [child_gate_view(state.child_workflow_id, g) for g in state.child_gates]
    done = {"plan": 0, "review": 1, "execute": 2, "remember": 3}.get(state.phase, 4)
    return RunStatus(
        workflow_id=workflow_id,
        run_id=run_id,
        state=run_state,
        pipeline="governed",
        version=1,
        requester=inp.requester,
        approval_mode="manual",
        started_at=state.started_at,
        revision=state.revision,
        paused=False,
        steps=[],
        progress=Progress(done=done, total=4, percent=round(100.0 * done / 4, 1)),
        open_gates=gates,
        output=mask(state.output),
        error=state.error,
        audit=state.audit[-20:],
        audit_total=state.audit_total,
        kind="governed",
        governed=GovernedView(
            phase=state.phase,
            request=inp.request,
            context=mask(inp.context),
            policy=inp.policy.name,
            plan=mask(state.plan),
            plan_source=state.plan_source,
            plan_attempts=state.plan_attempts,
            plan_errors=state.plan_errors,
            assessment=state.assessment.model_dump(mode="json") if state.assessment else None,
            decision=state.decision,
            child_workflow_id=state.child_workflow_id,
            child_state=state.child_state,
            similar=[h.pattern.workflow_id for h in state.similar],
            durations_ms=state.durations_ms,
        ),
    )


def gate_view(g: GateRecord, spec: ApprovalSpec) -> GateView:
    live = votes.live(g)
    return GateView(
        gate=g.gate,
        step=g.step,
        stage=g.stage,
        state="open" if g.open else votes.GATE_STATE[g.outcome or "cancel"],
        outcome=g.outcome,
        decided_by=g.decided_by[-1] if g.decided_by else None,
        decided_at=g.decided_at,
        round=g.round,
        approvers=g.approvers,
        quorum=spec.quorum,
        approvals=[v for v in live if v.action not in votes.STOP],
        rejections=[v for v in live if v.action in votes.STOP],
        lapsed=len(g.votes) - len(live),
        actions=list(spec.actions()),
        digest=g.digest,
        review=spec.review,
        subject=mask(g.subject),
        modified=g.modified,
        opened_at=g.opened_at,
        deadline=g.deadline,
    )


def summary(state: GovernedState) -> list[GateSummary]:
    """The inbox line of the open review gate."""
    g = state.gate
    if g is None or not g.open or state.tier_gate is None:
        return []
    spec = approval(state.tier_gate)
    return [
        GateSummary(
            gate=g.gate,
            stage=g.stage,
            round=g.round,
            approvers=g.approvers,
            actions=list(spec.actions()),
            voted=[v.actor for v in votes.live(g)],
            digest=g.digest,
            review=spec.review,
            subject=None,
            subject_truncated=True,
            opened_at=g.opened_at,
            deadline=g.deadline,
            quorum=spec.quorum,
            priority="high" if state.assessment and state.assessment.tier >= 3 else "normal",
        )
    ]
