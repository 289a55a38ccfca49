"""The state of a governed run and the pure rules of its review gate: one serializable model the
GovernedWorkflow shell holds, the tier's gate, and decisions at it, which follow the rules every
gate follows (workflows/rules/votes.py and decisions.py). Its status is in governed_view.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.models import MemoryHit, PlanResult
from workflows.language.definition import ApprovalSpec, Priority
from workflows.language.policy import Policy, TierGate
from workflows.models import (
    AuditEntry,
    Decision,
    GateRefusal,
    GateSummary,
    NotifyDefaults,
    Principal,
)
from workflows.rules import decisions, risk, view, votes
from workflows.rules.risk import Assessment
from workflows.rules.state import GateRecord, Trail

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


class GovernedState(Trail):
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
    revision: int = 0

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


def priority(state: GovernedState) -> Priority:
    """A plan that needs the senior tier is high priority in the inbox."""
    return "high" if state.assessment is not None and state.assessment.tier >= 3 else "normal"


def accept(state: GovernedState, found: PlanResult) -> None:
    """A checked plan becomes the run's plan, with each step's tool risk."""
    state.plan, state.risks, state.plan_errors = found.definition, found.risks, []


def assess(state: GovernedState, inp: GovernedInput) -> None:
    """The accepted plan's tier, score and reasons, by the run's policy (again after a modify,
    keeping what an LLM assessor said before: a modify cannot shed the tier it raised)."""
    if state.plan is None:
        return
    said = [r for r in state.assessment.reasons if r.rule == "llm"] if state.assessment else []
    fresh = risk.assess(
        state.plan, state.risks, inp.request, inp.context, inp.policy, state.similar
    )
    floor = max((r.tier or 1 for r in said), default=1)
    state.assessment = risk.raised(fresh, floor, said) if said else fresh


def open_review(state: GovernedState, gate: TierGate, now: datetime) -> GateRecord:
    """The review gate opens on the plan and its assessment, for the tier's approvers."""
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
        approvers=list(gate.approvers),
        priority=priority(state),
    )
    state.gate, state.tier_gate = record, gate
    return record


def open_gate(state: GovernedState) -> tuple[GateRecord, ApprovalSpec] | None:
    """The review gate while it is open, with the rules its tier gives it."""
    if state.gate is None or state.tier_gate is None or not state.gate.open:
        return None
    return state.gate, approval(state.tier_gate)


def admit(
    state: GovernedState, inp: GovernedInput, d: Decision, now: datetime
) -> tuple[GateRecord, ApprovalSpec] | GateRefusal:
    """The open review gate `d` may be cast on, or why not (the code maps to HTTP)."""
    if d.gate != REVIEW_GATE:
        return GateRefusal(
            code="unknown_gate", message=f"run has no gate {d.gate!r} (its gate is {REVIEW_GATE!r})"
        )
    found = open_gate(state)
    if found is None:
        shown = state.gate.outcome if state.gate is not None else "not open yet"
        return GateRefusal(
            code="gate_not_open", message=f"gate {REVIEW_GATE!r} is not open ({shown})"
        )
    refusal = votes.check(found[0], found[1], d, inp.requester, set(), now)
    if refusal is None and d.action == "modify" and not isinstance(amended_plan(d), dict):
        refusal = GateRefusal(
            code="bad_patch", message='modify a plan with {"plan": <merge patch of the plan>}'
        )
    return refusal if refusal is not None else found


def amended_plan(d: Decision) -> Any:
    """The merge patch a modify proposes for the plan (`{"plan": {...}}`), if it has one."""
    return d.patch.get("plan") if isinstance(d.patch, dict) else None


def apply(
    state: GovernedState,
    inp: GovernedInput,
    d: Decision,
    now: datetime,
    via: decisions.Via,
    checked: PlanResult | None = None,
) -> GateRefusal | None:
    """Cast `d` if the gate takes it now, else the refusal (recorded when it came by signal). A
    modify needs its amended plan `checked`: it becomes the plan, is assessed again, and the gate
    follows the new tier's approvers and rules; tier 1 with automatic approval needs nobody."""
    admitted = admit(state, inp, d, now)
    if isinstance(admitted, tuple) and d.action == "modify":
        if checked is None or checked.definition is None or checked.errors:
            errors = checked.errors if checked is not None else ["not checked"]
            admitted = GateRefusal(
                code="bad_patch", message="the amended plan is not valid: " + "; ".join(errors)
            )
    if isinstance(admitted, GateRefusal):
        if via == "signal":
            decisions.refuse(state, d, admitted, now, via)
        return admitted
    gate, spec = admitted
    if d.action == "modify" and checked is not None:
        accept(state, checked)
        assess(state, inp)
        tier_gate = inp.policy.gate(state.assessment.tier if state.assessment else 3)
        approvers = list(tier_gate.approvers) if tier_gate is not None else gate.approvers
        new_spec = approval(tier_gate) if tier_gate is not None else spec
        barred = frozenset(
            [inp.requester.principal] if new_spec.forbid_self_approval and inp.requester else []
        )
        amended = votes.Amendment(subject(state), approvers, barred)
        vote = votes.cast(gate, new_spec, d, now, amended)
        gate.priority = priority(state)
        if tier_gate is not None:
            state.tier_gate = tier_gate
        elif gate.open:
            votes.close(gate, "modify", [d.actor], now, None)
    else:
        vote = votes.cast(gate, spec, d, now)
    state.record(decisions.entry(d, now, via, "accepted", vote=vote))
    return None


def summary(state: GovernedState, requester: Principal | None = None) -> list[GateSummary]:
    """The inbox line of the open review gate."""
    found = open_gate(state)
    return [view.gate_summary(*found, requester)] if found is not None else []
