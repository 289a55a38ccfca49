"""A plan's risk, as a tier: from the risk of each exact tool call it can make (a step's own, a
compensation's, a gate notification's: workflows/language/reach.py lists them), from how similar
plans went before, and from the policy's own rules. Pure: every reason names its step (or none),
its call and its rule."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from activities.models import MemoryHit, PathError, step_into
from workflows.language import expr, reach
from workflows.language.policy import Policy


class Reason(BaseModel):
    step: str | None = Field(None, description="the step it concerns; none for the whole plan")
    call: str | None = Field(
        None, description="the tool call it concerns, by its path (steps[0].compensate.tool)"
    )
    rule: str = Field(description="what raised the risk: tool risk, history, a policy rule, llm")
    detail: str
    points: float = 0.0
    tier: int | None = Field(None, description="the tier this reason requires at least")


class Assessment(BaseModel):
    tier: int = Field(ge=1, le=3)
    score: float
    reasons: list[Reason] = Field(default_factory=list)


def assess(
    plan: dict[str, Any],
    risks: dict[str, str],
    request: str,
    context: dict[str, Any],
    policy: Policy,
    similar: list[MemoryHit],
) -> Assessment:
    """Score the plan, then raise the tier where a rule says so; never below 1."""
    reasons: list[Reason] = []
    for call in reach.calls(plan):
        risk = risk_of(call, risks)
        points = getattr(policy.scores, risk, policy.scores.high)
        if points > 0:
            what = "" if call.kind == "step" else f"{reach.KINDS[call.kind]} "
            reasons.append(
                Reason(
                    step=call.step,
                    call=call.path,
                    rule="tool risk",
                    detail=f"{what}{call.ref} is {risk} risk",
                    points=points,
                )
            )
    counted = 0
    for hit in similar:
        if counted >= policy.history.counted:
            break
        went = hit.pattern.outcome
        points = {"rejected": policy.history.rejected, "failed": policy.history.failed}.get(
            went, 0.0
        )
        if points > 0:
            counted += 1
            said = f": {hit.pattern.comments[0]}" if hit.pattern.comments else ""
            reasons.append(
                Reason(
                    rule="history",
                    detail=f"a similar request ({hit.pattern.workflow_id}) was {went}{said}",
                    points=points,
                )
            )
    score = round(sum(r.points for r in reasons), 3)
    tier = 1  # the score's own tier is taken once every rule has added to the score
    facts = {"request": request, "context": context, "plan": plan}
    for rule in policy.rules:
        try:
            held = expr.truthy(expr.evaluate(expr.parse(rule.if_), lambda p: _lookup(facts, p)))
        except expr.ExpressionError as err:
            reasons.append(Reason(rule=rule.if_, detail=f"not evaluated: {err}", tier=3))
            tier = 3
            continue
        if held:
            reasons.append(
                Reason(rule=rule.if_, detail=rule.reason, points=rule.score, tier=rule.tier)
            )
            score = round(score + rule.score, 3)
            tier = max(tier, rule.tier or 1)
    tier = max(tier, 3 if score >= policy.tier3_at else 2 if score >= policy.tier2_at else 1)
    return Assessment(tier=tier, score=score, reasons=reasons)


def risk_of(call: reach.Call, risks: dict[str, str]) -> str:
    """A call's risk as the plan's check found it; high when it found none (fail safe). A check
    recorded before calls had paths named each step's own tool by the step's id."""
    found = risks.get(call.path)
    if found is None and call.kind == "step" and call.step is not None:
        found = risks.get(call.step)
    return found or "high"


def raised(assessment: Assessment, tier: int, reasons: list[Reason]) -> Assessment:
    """An assessor's opinion added: more reasons, and a tier that can only go up."""
    return Assessment(
        tier=max(assessment.tier, min(max(tier, 1), 3)),
        score=assessment.score,
        reasons=[*assessment.reasons, *reasons],
    )


def _lookup(facts: dict[str, Any], path: str) -> Any:
    """A dotted path into request, context and plan; anything missing reads as null."""
    value: Any = facts
    for key in path.split("."):
        try:
            value = step_into(value, key, path)
        except PathError:
            return None
    return value
