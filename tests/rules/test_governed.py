"""A governed run's review gate follows the rules every gate follows (votes and decisions), and
its state and status are pure functions: tested here without a server."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from activities.models import PlanResult
from tests.rules.sim import T0
from workflows.language.policy import Policy, TierGate
from workflows.models import AuditEntry, Decision, GateRefusal, GateSummary, Principal
from workflows.names import RunState
from workflows.rules import governed, governed_view, risk, votes
from workflows.rules.governed import REVIEW_GATE, GovernedInput, GovernedState
from workflows.rules.pages import PageInput

PLAN = {"name": "p", "steps": [{"id": "read", "tool": "http.request"}]}
POLICY = Policy(
    tier2=TierGate(approvers=["role:peer"], quorum=1),
    tier3=TierGate(approvers=["role:elder"], quorum=2, review="Elders, look closely"),
)


def inp(policy: Policy = POLICY, requester: str | None = "req") -> GovernedInput:
    return GovernedInput(
        request="deploy",
        context={"db_password": "hunter2", "n": 1},
        policy=policy,
        requester=Principal(principal=requester) if requester else None,
    )


def planned(risks: dict[str, str], i: GovernedInput | None = None) -> GovernedState:
    """A state whose plan was accepted and assessed: `read` at the given tool risk."""
    st = GovernedState(started_at=T0, phase_started=T0)
    governed.accept(st, PlanResult(definition=PLAN, risks=risks))
    governed.assess(st, i or inp())
    return st


def reviewing(risks: dict[str, str] | None = None, i: GovernedInput | None = None) -> GovernedState:
    st = planned(risks or {"read": "medium"}, i)
    assert st.assessment is not None
    gate = (i or inp()).policy.gate(st.assessment.tier)
    assert gate is not None
    governed.open_review(st, gate, T0)
    return st


def decision(
    action: str, actor: str = "pia", roles: list[str] | None = None, **kw: Any
) -> Decision:
    return Decision(
        gate=kw.pop("gate", REVIEW_GATE),
        action=action,  # type: ignore[arg-type]
        actor=actor,
        roles=roles if roles is not None else ["peer"],
        **kw,
    )


def code(found: object) -> str | None:
    return found.code if isinstance(found, GateRefusal) else None


def checked(plan: dict[str, Any], risks: dict[str, str]) -> PlanResult:
    return PlanResult(definition=plan, risks=risks)


def test_accept_takes_the_checked_plan_and_clears_earlier_errors() -> None:
    """The checked plan and its tool risks become the run's; earlier plan errors are gone."""
    st = GovernedState(started_at=T0, phase_started=T0, plan_errors=["old"])
    governed.accept(st, PlanResult(definition=PLAN, risks={"read": "low"}))
    assert (st.plan, st.risks, st.plan_errors) == (PLAN, {"read": "low"}, [])


def test_assess_sets_the_tier_and_needs_a_plan() -> None:
    """The policy turns the plan's risk into a tier; without a plan nothing is assessed."""
    assert planned({"read": "low"}).assessment is not None
    assert planned({"read": "low"}).assessment.tier == 1  # type: ignore[union-attr]
    assert planned({"read": "high"}).assessment.tier == 3  # type: ignore[union-attr]
    st = GovernedState(started_at=T0, phase_started=T0)
    governed.assess(st, inp())
    assert st.assessment is None


def test_approval_gives_the_tier_its_rules_and_the_four_actions() -> None:
    """The tier's approvers, quorum and timeout carry over; a plan is approved, modified,
    rejected or cancelled; without a timeout the gate never times out into anything but reject."""
    spec = governed.approval(
        TierGate(approvers=["role:elder"], quorum=2, timeout="1h", on_timeout="cancel")
    )
    assert (spec.approvers, spec.quorum, spec.stage) == (["role:elder"], 2, "before")
    assert list(spec.actions()) == ["approve", "reject", "modify", "cancel"]
    assert (spec.timeout, spec.on_timeout) == ("1h", "cancel")
    assert (
        governed.approval(TierGate(approvers=["role:x"], on_timeout="cancel")).on_timeout
        == "reject"
    )
    assert (
        governed.approval(TierGate(approvers=["role:x"])).review
        == "Review the plan and its risk assessment"
    )
    assert governed.approval(POLICY.tier3).review == "Elders, look closely"
    assert (
        governed.approval(
            TierGate(approvers=["role:x"], forbid_self_approval=False)
        ).forbid_self_approval
        is False
    )


def test_open_review_binds_the_gate_to_the_plan_and_its_assessment() -> None:
    """The gate's subject is exactly the plan with its assessment, its digest that subject's;
    a tier-3 plan is high priority in the inbox, a tier-2 one normal."""
    st = reviewing({"read": "medium"})
    gate = st.gate
    assert gate is not None and st.tier_gate == POLICY.tier2
    assert gate.subject == governed.subject(st)
    assert gate.subject["plan"] == PLAN and gate.subject["assessment"]["tier"] == 2
    assert gate.digest == votes.digest_of(gate.subject)
    assert (gate.gate, gate.step, gate.stage, gate.approvers, gate.priority) == (
        REVIEW_GATE,
        REVIEW_GATE,
        "before",
        ["role:peer"],
        "normal",
    )
    assert reviewing({"read": "high"}).gate.priority == "high"  # type: ignore[union-attr]
    assert governed.subject(GovernedState(started_at=T0, phase_started=T0)) == {
        "plan": None,
        "assessment": None,
    }


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (decision("approve", gate="other"), "unknown_gate"),
        (decision("approve", actor="olga", roles=["ops"]), "not_authorized"),
        (decision("approve", actor="req"), "self_approval"),
        (decision("retry"), "action_not_allowed"),
        (decision("modify", patch={"steps": []}), "bad_patch"),
        (decision("modify", patch={"plan": "x"}), "bad_patch"),
        (decision("approve", digest="sha256:nope"), "digest_mismatch"),
        (decision("approve"), None),
        (decision("reject", actor="req"), None),
        (decision("modify", patch={"plan": {"name": "q"}}), None),
    ],
)
def test_admit_applies_every_gate_rule(d: Decision, expected: str | None) -> None:
    """The review gate refuses what any gate refuses (wrong gate, not an approver, the requester
    approving, an action it does not offer, a stale digest) and a modify without a plan patch."""
    assert code(governed.admit(reviewing(), inp(), d, T0)) == expected


def test_admit_refuses_before_the_gate_opens_and_after_it_closed() -> None:
    """No review yet, or a decided one: gate_not_open, saying which."""
    st = planned({"read": "medium"})
    found = governed.admit(st, inp(), decision("approve"), T0)
    assert code(found) == "gate_not_open" and "not open yet" in found.message  # type: ignore[union-attr]
    st = reviewing()
    assert governed.apply(st, inp(), decision("approve"), T0, "update") is None
    found = governed.admit(st, inp(), decision("approve", actor="pat"), T0)
    assert code(found) == "gate_not_open" and "approve" in found.message  # type: ignore[union-attr]


def test_apply_approve_reaches_the_quorum_and_records_it() -> None:
    """One peer's approval decides a tier-2 review; the audit records it as accepted."""
    st = reviewing()
    assert governed.apply(st, inp(), decision("approve", comment="ok"), T0, "update") is None
    assert st.gate is not None and st.gate.outcome == "approve" and st.gate.decided_by == ["pia"]
    assert [(e.kind, e.action, e.outcome, e.via) for e in st.audit] == [
        ("decision", "approve", "accepted", "update")
    ]


def test_apply_twice_by_one_principal_counts_once() -> None:
    """Two approvals by one elder (two updates of one task) count once: the second is refused."""
    st = reviewing({"read": "high"})
    elder = decision("approve", actor="eve", roles=["elder"])
    assert governed.apply(st, inp(), elder, T0, "update") is None
    assert code(governed.apply(st, inp(), elder, T0, "update")) == "already_voted"
    assert st.gate is not None and st.gate.open and len(st.gate.votes) == 1
    assert (
        governed.apply(st, inp(), decision("approve", actor="eli", roles=["elder"]), T0, "update")
        is None
    )
    assert st.gate.outcome == "approve" and st.gate.decided_by == ["eve", "eli"]


def test_a_refused_signal_is_recorded_and_a_refused_update_is_not() -> None:
    """A refusal by signal leaves an audit entry naming its code; by update, nothing."""
    st = reviewing()
    outsider = decision("approve", actor="olga", roles=["ops"])
    assert code(governed.apply(st, inp(), outsider, T0, "update")) == "not_authorized"
    assert st.audit == []
    assert code(governed.apply(st, inp(), outsider, T0, "signal")) == "not_authorized"
    assert [(e.outcome, e.via) for e in st.audit] == [("refused", "signal")]
    assert (st.audit[0].reason or "").startswith("not_authorized: ")


def test_modify_needs_a_valid_checked_plan() -> None:
    """A modify whose amended plan was not checked, or was found invalid, is bad_patch, with
    every error named; the plan and the gate stay as they were."""
    st = reviewing()
    before = copy.deepcopy(st.gate)
    d = decision("modify", patch={"plan": {"name": "q"}})
    assert code(governed.apply(st, inp(), d, T0, "update")) == "bad_patch"
    bad = PlanResult(errors=["steps.0.tool: unknown", "steps: too many"])
    refusal = governed.apply(st, inp(), d, T0, "update", bad)
    assert code(refusal) == "bad_patch"
    assert "steps.0.tool: unknown; steps: too many" in refusal.message  # type: ignore[union-attr]
    assert st.plan == PLAN and st.gate == before


def test_modify_to_a_higher_tier_moves_the_gate_to_its_approvers_without_the_peers_vote() -> None:
    """A peer who amends a tier-2 plan into tier 3 replaces the subject (earlier votes lapse),
    the gate follows the elders' approvers and quorum, the peer's vote does not count for them,
    and the inbox shows it as high priority."""
    st = reviewing({"read": "medium"})
    old_digest = st.gate.digest  # type: ignore[union-attr]
    amended = {**PLAN, "name": "riskier"}
    d = decision("modify", patch={"plan": {"name": "riskier"}}, comment="bigger")
    assert governed.apply(st, inp(), d, T0, "update", checked(amended, {"read": "high"})) is None
    gate = st.gate
    assert gate is not None and gate.open and gate.modified
    assert st.plan == amended and st.assessment is not None and st.assessment.tier == 3
    assert gate.digest != old_digest and gate.digest == votes.digest_of(governed.subject(st))
    assert gate.approvers == ["role:elder"] and st.tier_gate == POLICY.tier3
    assert votes.live(gate) == [] and gate.priority == "high"
    assert st.audit[-1].outcome == "accepted" and st.audit[-1].action == "modify"
    # The elders decide the amended plan, by their quorum of two.
    assert (
        governed.apply(st, inp(), decision("approve", actor="eve", roles=["elder"]), T0, "update")
        is None
    )
    assert gate.open
    assert (
        governed.apply(st, inp(), decision("approve", actor="eli", roles=["elder"]), T0, "update")
        is None
    )
    assert gate.outcome == "modify" and gate.decided_by == ["eve", "eli"]


def test_modify_into_a_tier_that_forbids_self_approval_does_not_count_the_requesters_vote() -> None:
    """A requester who may approve at tier 2 (its rules allow self-approval) and is also an
    elder amends the plan into tier 3, whose rules forbid it: the gate moves to the elders and
    the requester's modify is no vote there; two other elders decide it. Within tier 2, whose
    rules allow it, the same modify is the requester's vote and decides the gate."""
    lax = POLICY.model_copy(
        update={"tier2": TierGate(approvers=["role:peer"], forbid_self_approval=False)}
    )
    i = inp(lax, requester="rita")
    st = reviewing({"read": "medium"}, i)
    d = decision("modify", actor="rita", roles=["peer", "elder"], patch={"plan": {"name": "x"}})
    assert (
        governed.apply(st, i, d, T0, "update", checked({**PLAN, "name": "x"}, {"read": "high"}))
        is None
    )
    gate = st.gate
    assert gate is not None and gate.open and gate.approvers == ["role:elder"]
    assert votes.live(gate) == []
    for elder in ("eve", "eli"):
        assert governed.apply(st, i, decision("approve", elder, ["elder"]), T0, "update") is None
    assert (gate.outcome, gate.decided_by) == ("modify", ["eve", "eli"])
    same = reviewing({"read": "medium"}, i)
    assert (
        governed.apply(same, i, d, T0, "update", checked({**PLAN, "name": "x"}, {"read": "medium"}))
        is None
    )
    assert same.gate is not None and (same.gate.outcome, same.gate.decided_by) == (
        "modify",
        ["rita"],
    )


def test_modify_within_the_tier_counts_the_modifiers_vote() -> None:
    """A peer amending a tier-2 plan that stays tier 2 votes for it: quorum 1 decides it."""
    st = reviewing({"read": "medium"})
    d = decision("modify", patch={"plan": {"name": "q"}})
    assert (
        governed.apply(
            st, inp(), d, T0, "update", checked({**PLAN, "name": "q"}, {"read": "medium"})
        )
        is None
    )
    assert st.gate is not None and st.gate.outcome == "modify" and st.gate.decided_by == ["pia"]
    assert st.gate.priority == "normal"


def test_modify_down_to_tier_one_is_approved_by_the_policy_with_the_modifier() -> None:
    """A plan amended down to tier 1, which runs without a person, is decided by the modify."""
    st = reviewing(
        {"read": "medium"},
        inp(POLICY.model_copy(update={"tier2": TierGate(approvers=["role:peer"], quorum=2)})),
    )
    i = inp(POLICY.model_copy(update={"tier2": TierGate(approvers=["role:peer"], quorum=2)}))
    d = decision("modify", patch={"plan": {"name": "safe"}})
    assert (
        governed.apply(st, i, d, T0, "update", checked({**PLAN, "name": "safe"}, {"read": "low"}))
        is None
    )
    assert st.gate is not None and st.gate.outcome == "modify" and st.gate.decided_by == ["pia"]
    assert st.assessment is not None and st.assessment.tier == 1


def test_summary_is_the_open_gate_inbox_line_and_nothing_once_decided() -> None:
    """The inbox line shows the gate as every gate's line does; a decided review shows none."""
    st = reviewing({"read": "high"})
    (line,) = governed.summary(st)
    assert isinstance(line, GateSummary)
    assert (line.gate, line.approvers, line.quorum, line.priority, line.actions) == (
        REVIEW_GATE,
        ["role:elder"],
        2,
        "high",
        ["approve", "reject", "modify", "cancel"],
    )
    assert line.review == "Elders, look closely" and line.digest == st.gate.digest  # type: ignore[union-attr]
    assert governed.summary(planned({"read": "low"})) == []
    governed.apply(st, inp(), decision("reject", actor="eve", roles=["elder"]), T0, "update")
    assert governed.summary(st) == []


@pytest.mark.parametrize(
    ("phase", "paused", "gate", "child", "expected"),
    [
        ("completed", True, True, False, RunState.COMPLETED),
        ("failed", False, False, False, RunState.FAILED),
        ("cancelled", False, False, False, RunState.CANCELLED),
        ("review", True, True, False, RunState.PAUSED),
        ("review", False, True, False, RunState.WAITING),
        ("execute", False, False, True, RunState.WAITING),
        ("plan", False, False, False, RunState.RUNNING),
    ],
)
def test_run_state_of_a_governed_run(
    phase: str, paused: bool, gate: bool, child: bool, expected: RunState
) -> None:
    """Closed phases are final, a pause shows over a waiting gate, an open review or a child's
    open gate is waiting, anything else running."""
    st = reviewing() if gate else planned({"read": "medium"})
    st.phase = phase  # type: ignore[assignment]
    if child:
        st.child_gates = [governed.summary(reviewing())[0]]
    assert governed_view.run_state(st, paused) == expected


def test_status_shows_the_cycle_the_open_gate_and_masks_secrets() -> None:
    """The status has the pipeline shape: progress through the four phases, the open review as
    a gate view with its subject, the context and plan masked, the latest audit entries."""
    st = reviewing({"read": "high"})
    st.phase = "review"
    for n in range(25):
        st.record(AuditEntry(at=T0 + timedelta(seconds=n), kind="lifecycle", action=f"n{n}"))
    status = governed_view.status(st, inp(), "g-1", "r-1", paused=False)
    assert (status.workflow_id, status.run_id, status.pipeline, status.kind) == (
        "g-1",
        "r-1",
        "governed",
        "governed",
    )
    assert status.state == "waiting" and status.paused is False
    assert (status.progress.done, status.progress.total, status.progress.percent) == (1, 4, 25.0)
    (gate,) = status.open_gates
    assert gate.gate == REVIEW_GATE and gate.subject is not None and gate.quorum == 2
    assert gate.actions == ["approve", "reject", "modify", "cancel"] and gate.state == "open"
    assert status.governed is not None and status.governed.context == {"db_password": "***", "n": 1}
    assert status.governed.assessment is not None and status.governed.assessment["tier"] == 3
    assert [e.action for e in status.audit] == [f"n{n}" for n in range(5, 25)]
    assert status.audit_total == 25 and status.requester is not None
    assert governed_view.status(st, inp(), "g", "r", paused=True).state == "paused"


@pytest.mark.parametrize(
    ("phase", "done"),
    [("plan", 0), ("review", 1), ("execute", 2), ("remember", 3), ("completed", 4)],
)
def test_progress_counts_the_phases_done(phase: str, done: int) -> None:
    st = planned({"read": "low"})
    st.phase = phase  # type: ignore[assignment]
    assert governed_view.status(st, inp(), "g", "r", paused=False).progress.done == done


def test_awaiting_and_details_name_who_may_decide() -> None:
    """Visibility lists exactly the open review's approvers; the Web UI's details say the
    phase, the tier and who the review waits for, and where the plan runs."""
    st = reviewing({"read": "high"})
    st.phase = "review"
    assert governed_view.awaiting(st) == ["role:elder"]
    text = governed_view.details(st, paused=False)
    assert text.splitlines() == [
        f"**waiting** · governed, phase **review**, tier 3 (score {st.assessment.score})",  # type: ignore[union-attr]
        "- review waits for role:elder",
    ]
    st.child_workflow_id, st.child_state = "g--execute", "running"
    governed.apply(st, inp(), decision("reject", actor="eve", roles=["elder"]), T0, "update")
    assert governed_view.awaiting(st) == []
    assert governed_view.details(st, paused=True).splitlines()[1:] == [
        "- plan runs as `g--execute`: running"
    ]
    fresh = GovernedState(started_at=T0, phase_started=T0)
    assert (
        governed_view.details(fresh, paused=False)
        == "**running** · governed, phase **plan**, not assessed yet"
    )


@pytest.mark.parametrize(
    ("tier", "auto", "expected"),
    [
        (3, True, "tier3"),
        (4, True, "tier3"),
        (2, True, "tier2"),
        (1, True, None),
        (1, False, "tier2"),
    ],
)
def test_policy_gate_for_each_tier(tier: int, auto: bool, expected: str | None) -> None:
    """Tier 3 (or more) goes to the senior gate, tier 2 to the peers, tier 1 to nobody unless
    the policy turns automatic approval off, when peers review it."""
    policy = POLICY.model_copy(update={"auto_approve_tier1": auto})
    found = policy.gate(tier)
    assert found == (getattr(policy, expected) if expected else None)


def test_policy_refuses_tier_thresholds_out_of_order() -> None:
    """tier3_at below tier2_at would make tier 3 easier to reach than tier 2; equal is fine."""
    assert Policy(tier2_at=3, tier3_at=3).tier3_at == 3
    with pytest.raises(ValueError, match="tier3_at must not be below tier2_at"):
        Policy(tier2_at=3, tier3_at=2.5)


def test_a_modify_keeps_the_tier_an_llm_assessor_raised() -> None:
    """What an LLM assessor said stays after a modify: its reasons, and the tier it raised the
    plan to, so one elder's no-op modify cannot bring a tier-3 plan down to the peers."""
    st = reviewing({"read": "medium"})
    llm = risk.Reason(rule="llm", detail="it touches production", tier=3)
    st.assessment = risk.raised(st.assessment, 3, [llm])  # type: ignore[arg-type]
    st.tier_gate, st.gate.approvers = POLICY.tier3, ["role:elder"]  # type: ignore[union-attr]
    d = decision("modify", actor="eve", roles=["elder"], patch={"plan": {"name": "p"}})
    assert governed.apply(st, inp(), d, T0, "update", checked(PLAN, {"read": "medium"})) is None
    assert st.assessment is not None and st.assessment.tier == 3
    assert [r for r in st.assessment.reasons if r.rule == "llm"] == [llm]
    assert st.tier_gate == POLICY.tier3 and st.gate is not None and st.gate.open


def test_page_lists_the_review_gate_and_no_steps() -> None:
    """A governed run's gates page is its review gate (filtered by state, none after its own
    cursor, 422's cursor for anything else); it has no steps, items or iterations."""
    st = reviewing()
    gates = governed_view.page(st, PageInput(of="gates"))
    assert [(g.gate, g.state) for g in gates.gates] == [("review", "open")]
    assert gates.total == 1 and gates.next_cursor is None
    assert governed_view.page(st, PageInput(of="gates", state="approved")).gates == []
    after = governed_view.page(st, PageInput(of="gates", after="review"))
    assert (after.gates, after.total, after.problem) == ([], 1, None)
    assert governed_view.page(st, PageInput(of="gates", after="x")).problem == "bad_cursor"
    steps = governed_view.page(st, PageInput(of="steps"))
    assert (steps.steps, steps.total, steps.problem) == ([], 0, None)
    assert governed_view.page(st, PageInput(of="items", step="a")).problem == "unknown_step"
    planning = GovernedState(started_at=T0, phase_started=T0)
    assert governed_view.page(planning, PageInput(of="gates")).gates == []
