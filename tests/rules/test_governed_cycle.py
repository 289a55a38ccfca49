"""A governed run's cycle and its review gate (workflows/rules/governed.py): phases timed and
audited, the tier's rules carried to the gate, and decisions by a run without a requester."""

from __future__ import annotations

from datetime import timedelta

from activities.models import PlanResult
from tests.rules.sim import T0
from tests.rules.test_governed import PLAN, POLICY, decision, inp, planned, reviewing
from workflows.language.policy import TierGate
from workflows.rules import governed, risk
from workflows.rules.governed import GovernedState


def test_enter_times_each_phase_left_and_audits_the_move() -> None:
    """Leaving a phase adds the time spent in it (again on a second visit); the audit says which
    phase was entered and why; a closed phase is not timed."""
    st = GovernedState(started_at=T0, phase_started=T0)
    st.enter("review", T0 + timedelta(seconds=2), "planned")
    st.enter("plan", T0 + timedelta(seconds=5))
    st.enter("review", T0 + timedelta(seconds=6, milliseconds=500))
    st.enter("failed", T0 + timedelta(seconds=10), "boom")
    st.enter("cancelled", T0 + timedelta(seconds=99))
    assert st.durations_ms == {"plan": 3500, "review": 6500}
    assert (st.phase, st.phase_started) == ("cancelled", T0 + timedelta(seconds=99))
    assert [(e.kind, e.action, e.reason) for e in st.audit] == [
        ("lifecycle", "phase:review", "planned"),
        ("lifecycle", "phase:plan", None),
        ("lifecycle", "phase:review", None),
        ("lifecycle", "phase:failed", "boom"),
        ("lifecycle", "phase:cancelled", None),
    ]
    assert st.audit[0].at == T0 + timedelta(seconds=2)


def test_approval_carries_the_tiers_rejections_and_timeout() -> None:
    """How many rejections reject, and the timeout with what it does, come from the tier."""
    spec = governed.approval(
        TierGate(approvers=["role:x"], rejections_to_reject=2, timeout="2h", on_timeout="reject")
    )
    assert (spec.rejections_to_reject, spec.timeout, spec.on_timeout) == (2, "2h", "reject")
    assert spec.forbid_self_approval is True
    assert governed.approval(TierGate(approvers=["role:x"])).timeout is None


def test_open_review_opens_at_once_on_round_zero_without_a_deadline() -> None:
    """The review opens when asked, on its first round, open, with nobody's vote yet."""
    st = planned({"read": "medium"})
    now = T0 + timedelta(minutes=3)
    record = governed.open_review(st, POLICY.tier2, now)
    assert st.gate is record
    assert (record.round, record.opened_at, record.deadline, record.open) == (0, now, None, True)
    assert record.votes == [] and governed.open_gate(st) is not None


def test_priority_is_high_from_tier_three_only() -> None:
    """Tier 3 is high priority; tiers 1 and 2, or no assessment, normal."""
    st = planned({"read": "low"})
    assert governed.priority(st) == "normal"
    assert governed.priority(planned({"read": "medium"})) == "normal"
    assert governed.priority(planned({"read": "high"})) == "high"
    assert governed.priority(GovernedState(started_at=T0, phase_started=T0)) == "normal"


def test_assess_again_keeps_an_llm_reason_without_a_tier_at_the_plans_own_tier() -> None:
    """An LLM reason that names no tier stays after assessing again, and raises nothing."""
    st = planned({"read": "low"})
    said = risk.Reason(rule="llm", detail="looks fine")
    st.assessment = risk.raised(st.assessment, 1, [said])  # type: ignore[arg-type]
    governed.assess(st, inp())
    assert st.assessment is not None and st.assessment.tier == 1
    assert [r for r in st.assessment.reasons if r.rule == "llm"] == [said]


def test_assess_again_keeps_the_tier_an_llm_reason_raised_to_two() -> None:
    """An LLM reason that raised a low plan to tier 2 keeps it there when assessed again."""
    st = planned({"read": "low"})
    said = risk.Reason(rule="llm", detail="touches billing", tier=2)
    st.assessment = risk.raised(st.assessment, 2, [said])  # type: ignore[arg-type]
    governed.assess(st, inp())
    assert st.assessment is not None and st.assessment.tier == 2


def test_a_modify_without_a_requester_bars_nobody() -> None:
    """A run without a requester bars no one from the amended gate: the modifier's vote counts."""
    i = inp(requester=None)
    st = reviewing({"read": "medium"}, i)
    d = decision("modify", patch={"plan": {"name": "q"}})
    assert (
        governed.apply(
            st,
            i,
            d,
            T0,
            "update",
            PlanResult(definition={**PLAN, "name": "q"}, risks={"read": "medium"}),
        )
        is None
    )
    assert st.gate is not None and (st.gate.outcome, st.gate.decided_by) == ("modify", ["pia"])


def test_a_refused_modify_by_signal_is_audited_with_every_error() -> None:
    """A modify whose amended plan is invalid, sent by signal, leaves a refused entry naming
    each error; unchecked, it names that."""
    st = reviewing()
    d = decision("modify", patch={"plan": {"name": "q"}})
    bad = PlanResult(errors=["a", "b"])
    assert governed.apply(st, inp(), d, T0, "signal", bad) is not None
    assert governed.apply(st, inp(), d, T0, "signal") is not None
    assert [(e.outcome, e.reason) for e in st.audit] == [
        ("refused", "bad_patch: the amended plan is not valid: a; b"),
        ("refused", "bad_patch: the amended plan is not valid: not checked"),
    ]


def test_admit_names_the_gate_asked_for_and_the_reviews_outcome() -> None:
    """An unknown gate's refusal names it and the run's one gate; a decided review's, its
    outcome; a modify without a plan patch says how to send one."""
    st = reviewing()
    found = governed.admit(st, inp(), decision("approve", gate="deploy"), T0)
    assert not isinstance(found, tuple)
    assert found.message == "run has no gate 'deploy' (its gate is 'review')"
    found = governed.admit(st, inp(), decision("modify", patch={"steps": []}), T0)
    assert not isinstance(found, tuple)
    assert found.message == 'modify a plan with {"plan": <merge patch of the plan>}'
    governed.apply(st, inp(), decision("reject"), T0, "update")
    found = governed.admit(st, inp(), decision("approve", actor="pat"), T0)
    assert not isinstance(found, tuple)
    assert found.message == "gate 'review' is not open (reject)"
    assert governed.admit(planned({"read": "low"}), inp(), decision("approve"), T0).message == (  # type: ignore[union-attr]
        "gate 'review' is not open (not open yet)"
    )
