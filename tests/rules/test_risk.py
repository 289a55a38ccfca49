"""Risk tiers: from each tool call's risk, from how similar runs went, and from policy rules."""

from __future__ import annotations

from typing import Any

import pytest

from activities.models import MemoryHit, MemoryPattern
from tests.rules.sim import T0
from workflows.language.policy import Policy, RiskRule
from workflows.rules.risk import Reason, assess, raised

PLAN = {
    "name": "p",
    "steps": [{"id": "read", "tool": "http.request"}, {"id": "echo", "tool": "data.echo"}],
}


def hit(outcome: str, comments: list[str] | None = None, n: int = 1) -> MemoryHit:
    return MemoryHit(
        id=n,
        score=1.0,
        pattern=MemoryPattern(
            workflow_id=f"g-{n}",
            request="r",
            outcome=outcome,
            comments=comments or [],
            created_at=T0,
        ),
    )


@pytest.mark.parametrize(
    ("risks", "tier", "score"),
    [
        ({"read": "low", "echo": "low"}, 1, 0.0),
        ({"read": "medium", "echo": "low"}, 2, 2.0),
        ({"read": "high", "echo": "low"}, 3, 5.0),
        ({"read": "medium", "echo": "medium"}, 2, 4.0),
        ({}, 3, 10.0),
    ],
)
def test_each_steps_risk_adds_to_the_score_and_sets_the_tier(
    risks: dict[str, str], tier: int, score: float
) -> None:
    """Low, medium and high steps add 0, 2 and 5 points; 2 points is tier 2, 5 is tier 3; a step
    whose risk is unknown counts as high."""
    a = assess(PLAN, risks, "r", {}, Policy(), [])
    assert (a.tier, a.score) == (tier, score)
    assert all(r.rule == "tool risk" and r.step in ("read", "echo") for r in a.reasons)


def test_reasons_name_the_step_and_the_tool() -> None:
    """A tool-risk reason says which step, which call and which tool, and how many points it
    added."""
    a = assess(PLAN, {"read": "medium", "echo": "low"}, "r", {}, Policy(), [])
    assert a.reasons == [
        Reason(
            step="read",
            call="steps[0].tool",
            rule="tool risk",
            detail="http.request is medium risk",
            points=2.0,
        )
    ]


# The reproduced plan: a harmless echo whose compensation lists the root folder, then a failure
# that sets the compensation off; a gate that notifies a webhook the plan chose.
COMPENSATED = {
    "name": "p",
    "steps": [
        {
            "id": "echo",
            "tool": "data.echo",
            "resolved_tool": "data.echo@1.0.0",
            "compensate": {"tool": "shell.run", "with": {"argv": ["ls", "-la", "/"]}},
        },
        {"id": "boom", "tool": "flow.fail", "needs": ["echo"]},
    ],
}
NOTIFYING = {
    "name": "p",
    "steps": [
        {
            "id": "echo",
            "tool": "data.echo",
            "approval": {"approvers": ["role:x"], "notify": {"with": {"url": "http://x/"}}},
        }
    ],
}


def test_a_compensation_is_scored_with_its_own_risk() -> None:
    """A low step whose compensation runs a high-risk tool is tier 3: the compensation's own
    risk (by its path) adds its points, named as the compensation of its step."""
    risks = {
        "steps[0].tool": "low",
        "steps[0].compensate.tool": "high",
        "steps[1].tool": "low",
    }
    a = assess(COMPENSATED, risks, "r", {}, Policy(), [])
    assert (a.tier, a.score) == (3, 5.0)
    assert [(r.step, r.call, r.detail) for r in a.reasons] == [
        ("echo", "steps[0].compensate.tool", "compensation shell.run is high risk")
    ]


def test_a_gate_notification_is_scored_and_an_unscored_call_counts_as_high() -> None:
    """A gate notification (its tool the default, notify.webhook) adds its own risk; a call the
    check gave no risk for, such as a compensation in a result keyed by step id only, counts as
    high (fail safe) while the step's own tool still reads its step-id risk."""
    risks = {"steps[0].tool": "low", "steps[0].approval.notify.tool": "medium"}
    a = assess(NOTIFYING, risks, "r", {}, Policy(), [])
    assert (a.tier, a.score) == (2, 2.0)
    assert [(r.call, r.detail) for r in a.reasons] == [
        ("steps[0].approval.notify.tool", "gate notification notify.webhook is medium risk")
    ]
    legacy = assess(COMPENSATED, {"echo": "low", "boom": "low"}, "r", {}, Policy(), [])
    assert (legacy.tier, [r.call for r in legacy.reasons]) == (3, ["steps[0].compensate.tool"])


def test_rejected_and_failed_similar_runs_raise_the_score() -> None:
    """Similar past runs that were rejected (3) or failed (2) add points, each named with its
    comment; completed ones add nothing; only `counted` of them count."""
    similar = [
        hit("rejected", ["too risky"], 1),
        hit("completed", n=2),
        hit("failed", n=3),
        hit("failed", n=4),
    ]
    policy = Policy.model_validate({"history": {"rejected": 3, "failed": 2, "counted": 2}})
    a = assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, policy, similar)
    assert (a.tier, a.score) == (3, 5.0)
    assert [r.detail for r in a.reasons] == [
        "a similar request (g-1) was rejected: too risky",
        "a similar request (g-3) was failed",
    ]


def test_policy_rules_raise_the_tier_over_request_context_and_plan() -> None:
    """A rule that holds raises the tier to its own and adds its score; one that does not holds
    nothing; a rule that cannot be evaluated counts as tier 3 (fail safe)."""
    policy = Policy(
        rules=[
            RiskRule.model_validate(
                {"if": "context.environment == 'production'", "tier": 3, "reason": "prod"}
            ),
            RiskRule.model_validate(
                {"if": "contains(request, 'drop')", "score": 1.5, "reason": "drop"}
            ),
            RiskRule.model_validate({"if": "len(plan.steps) > 5", "tier": 2, "reason": "long"}),
        ]
    )
    low = {"read": "low", "echo": "low"}
    assert assess(PLAN, low, "drop the table", {"environment": "production"}, policy, []).tier == 3
    a = assess(PLAN, low, "drop the table", {"environment": "staging"}, policy, [])
    assert (a.tier, a.score, [r.detail for r in a.reasons]) == (1, 1.5, ["drop"])
    broken = Policy(rules=[RiskRule.model_validate({"if": "len(5) > 1", "reason": "x"})])
    b = assess(PLAN, low, "r", {}, broken, [])
    assert b.tier == 3 and b.reasons[0].detail.startswith("not evaluated")


def test_an_assessor_can_only_raise_the_tier() -> None:
    """An LLM assessor's tier below the computed one changes nothing but adds its reasons."""
    a = assess(PLAN, {"read": "medium", "echo": "low"}, "r", {}, Policy(), [])
    assert raised(a, 1, [Reason(rule="llm", detail="fine")]).tier == 2
    assert raised(a, 3, []).tier == 3 and raised(a, 9, []).tier == 3


def test_policy_gates_by_tier() -> None:
    """Tier 1 runs without a gate unless turned off; tier 2 peers, tier 3 two elders; thresholds
    must be ordered."""
    p = Policy()
    assert p.gate(1) is None
    assert p.gate(2) is not None and p.gate(2).approvers == ["role:peer"]  # type: ignore[union-attr]
    three = p.gate(3)
    assert three is not None and (three.approvers, three.quorum, three.forbid_self_approval) == (
        ["role:elder"],
        2,
        True,
    )
    assert Policy(auto_approve_tier1=False).gate(1) is not None
    with pytest.raises(ValueError, match="tier3_at must not be below tier2_at"):
        Policy(tier2_at=5, tier3_at=2)


def test_shipped_default_policy_is_valid() -> None:
    """definitions/policies/default.yaml parses into a policy."""
    from pathlib import Path

    from activities.documents import parse_document

    raw: Any = parse_document(
        (Path(__file__).parents[2] / "definitions/policies/default.yaml").read_text()
    )
    assert Policy.model_validate(raw).rules[0].tier == 3


def test_points_below_one_and_unknown_risks_count() -> None:
    """Any positive points make a reason (a low step worth 0.5, a rejected run worth 0.5); a risk
    word the policy has no score for counts as high; an unscored call's reason says high; the
    score keeps three decimals."""
    policy = Policy.model_validate(
        {"scores": {"low": 0.5}, "history": {"rejected": 0.5}, "tier2_at": 100, "tier3_at": 100}
    )
    a = assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, policy, [hit("rejected")])
    assert (a.score, [r.rule for r in a.reasons]) == (1.5, ["tool risk", "tool risk", "history"])
    odd = assess(PLAN, {"read": "extreme", "echo": "low"}, "r", {}, Policy(), [])
    assert (odd.tier, odd.score) == (3, 5.0)
    unscored = assess(COMPENSATED, {"echo": "low", "boom": "low"}, "r", {}, Policy(), [])
    assert unscored.reasons[0].detail == "compensation shell.run is high risk"
    fine = Policy.model_validate({"scores": {"low": 1.2344}, "tier2_at": 100, "tier3_at": 100})
    assert assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, fine, []).score == 2.469


def test_tiers_start_exactly_at_their_thresholds() -> None:
    """A score equal to tier2_at is tier 2, equal to tier3_at tier 3, just below each the tier
    under it; a rule's points count towards them."""
    policy = Policy.model_validate({"scores": {"medium": 1.0}, "tier2_at": 2, "tier3_at": 3})
    both = {"read": "medium", "echo": "medium"}
    assert assess(PLAN, both, "r", {}, policy, []).tier == 2
    assert assess(PLAN, {"read": "medium", "echo": "low"}, "r", {}, policy, []).tier == 1
    plus = policy.model_copy(
        update={"rules": [RiskRule.model_validate({"if": "true", "score": 1, "reason": "+1"})]}
    )
    assert assess(PLAN, both, "r", {}, plus, []).tier == 3
    assert assess(PLAN, {"read": "medium", "echo": "low"}, "r", {}, plus, []).tier == 2


def test_rule_reasons_record_their_tier_and_points_and_a_broken_rule_stops_none() -> None:
    """A rule that holds is recorded with its points and tier, its score kept to three decimals;
    one that cannot be evaluated is recorded as tier 3, and the rules after it still apply."""
    policy = Policy(
        rules=[
            RiskRule.model_validate({"if": "len(5) > 1", "reason": "broken"}),
            RiskRule.model_validate({"if": "true", "tier": 2, "score": 1.2344, "reason": "r2"}),
        ]
    )
    a = assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, policy, [])
    assert [(r.tier, r.points) for r in a.reasons] == [(3, 0.0), (2, 1.2344)]
    assert (a.tier, a.score) == (3, 1.234)
    history = assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, Policy(), [hit("failed")])
    assert [(r.rule, r.points) for r in history.reasons] == [("history", 2.0)]


def test_an_assessor_keeps_the_reasons_and_cannot_lower_tier_one() -> None:
    """An assessor's reasons are added after the ones already there; a tier-1 plan it rates 1
    (or below) stays tier 1."""
    lenient = Policy(tier2_at=50, tier3_at=50)
    a = assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, lenient, [hit("failed")])
    mine = Reason(rule="llm", detail="fine")
    out = raised(a, 0, [mine])
    assert (out.tier, out.reasons) == (1, [*a.reasons, mine])
    assert (
        raised(assess(PLAN, {"read": "low", "echo": "low"}, "r", {}, Policy(), []), 1, []).tier == 1
    )
