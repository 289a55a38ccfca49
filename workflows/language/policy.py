"""Governed runs' policies: how a plan's risk becomes a tier, and which gate each tier opens.

A policy is a YAML file in `definitions/policies/` (`default.yaml` unless a run names another);
the API reads it and the run keeps a snapshot, like a pipeline definition.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.language.definition import Duration, Expression, Name, Text
from workflows.language.limits import MAX_APPROVERS, MAX_QUORUM, MAX_STEPS

Tier = Annotated[int, Field(ge=1, le=3)]
PRINCIPAL_PATTERN = r"^(role|user):[^\s:]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TierGate(_Strict):
    """The review gate a tier opens."""

    approvers: list[Annotated[str, Field(pattern=PRINCIPAL_PATTERN)]] = Field(
        min_length=1, max_length=MAX_APPROVERS
    )
    quorum: int = Field(1, ge=1, le=MAX_QUORUM)
    rejections_to_reject: int = Field(1, ge=1, le=MAX_QUORUM)
    forbid_self_approval: bool = True
    timeout: Duration | None = None
    on_timeout: Literal["reject", "cancel"] = "reject"
    review: Text | None = None


class RiskRule(_Strict):
    """A condition over `request`, `context` and `plan` that raises the tier or adds to the score."""

    if_: Expression = Field(alias="if")
    tier: Tier | None = Field(None, description="the tier the run needs at least when it holds")
    score: float = Field(0.0, ge=0, le=100)
    reason: Text


class Scores(_Strict):
    """Points a step adds to the score by its tool's risk."""

    low: float = Field(0.0, ge=0, le=100)
    medium: float = Field(2.0, ge=0, le=100)
    high: float = Field(5.0, ge=0, le=100)


class History(_Strict):
    """Points each similar past run adds, by how it went (at most `counted` of them)."""

    rejected: float = Field(3.0, ge=0, le=100)
    failed: float = Field(2.0, ge=0, le=100)
    counted: int = Field(3, ge=0, le=10)


class Policy(_Strict):
    name: Name = "default"
    description: Text = ""
    auto_approve_tier1: bool = Field(True, description="tier 1 plans run without a person")
    allowed_tools: list[Name] | None = Field(
        None,
        description="tools a plan may call (its steps', compensations' and gate notifications'); "
        "every tool the worker has when left out",
    )
    max_steps: int = Field(20, ge=1, le=MAX_STEPS, description="tool calls a plan may name")
    allowed_task_queues: list[Name] = Field(
        default_factory=list,
        max_length=MAX_APPROVERS,
        description="task queues a plan's steps may name; none when empty",
    )
    planner_attempts: int = Field(3, ge=1, le=10, description="plans asked of the LLM at most")
    llm_assessor: bool = Field(False, description="let an LLM add reasons (it may only raise)")
    scores: Scores = Field(default_factory=Scores)
    tier2_at: float = Field(2.0, ge=0, description="a score from which the plan is tier 2")
    tier3_at: float = Field(5.0, ge=0, description="a score from which the plan is tier 3")
    history: History = Field(default_factory=History)
    rules: list[RiskRule] = Field(default_factory=list, max_length=100)
    tier2: TierGate = Field(default_factory=lambda: TierGate(approvers=["role:peer"], quorum=1))
    tier3: TierGate = Field(default_factory=lambda: TierGate(approvers=["role:elder"], quorum=2))

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        if self.tier3_at < self.tier2_at:
            raise ValueError("tier3_at must not be below tier2_at")
        return self

    def gate(self, tier: int) -> TierGate | None:
        """The gate for a tier; None when tier 1 runs without one."""
        if tier >= 3:
            return self.tier3
        if tier == 2:
            return self.tier2
        return None if self.auto_approve_tier1 else self.tier2
