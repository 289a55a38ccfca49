"""What a gate and a call's result hold: records the run's state keeps for its steps, items and
agent calls alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.notice import PostRef
from workflows.language.definition import Priority, Stage
from workflows.models import Vote

# What a decided gate does: one of the go-on outcomes (the run goes on) or a stop.
Outcome = Literal["approve", "modify", "skip", "retry", "reject", "cancel"]


@dataclass(slots=True, kw_only=True)
class GateRecord:
    """One opening of a step's gate (a new round after a retry is a new record), or an agent
    call's gate. A slotted dataclass, as a StepRecord is (state.py says why)."""

    gate: str
    step: str
    item: int | None = None
    # An agent step's call number, for its call gate.
    call: int | None = None
    # The tool an agent call gate's call is for.
    tool: str | None = None
    stage: Stage
    round: int
    subject: Any = None
    digest: str
    opened_at: datetime
    deadline: datetime | None = None
    approvers: list[str]
    escalated: bool = False
    votes: list[Vote] = field(default_factory=list)
    outcome: Outcome | None = None
    # The agreed patch of a retry, or a skip's substitute.
    patch: Any = None
    # The answer to the gate's form of the vote that decided it.
    response: dict[str, Any] | None = None
    decided_by: list[str] = field(default_factory=list)
    decided_at: datetime | None = None
    modified: bool = False
    reminders: int = 0
    next_reminder: datetime | None = None
    # The review text, its references resolved.
    review: str | None = None
    priority: Priority = "normal"
    # Chat messages its notifications posted (MAX_POSTS).
    posts: list[PostRef] = field(default_factory=list)
    # Of them, how many were told the gate was decided.
    posts_told: int = 0
    # Who a notification could not tell in their quiet hours (the first bounds.APPROVERS), told
    # at `held_until`, when the first of those hours ends, if the gate is still open then.
    held: list[str] = field(default_factory=list)
    held_until: datetime | None = None
    # How many such deliveries were sent (each its own idempotency key).
    held_told: int = 0

    @property
    def open(self) -> bool:
        return self.outcome is None


class Result(BaseModel):
    """What one invocation of a step's tool (or child pipeline) came back with."""

    round: int
    ok: bool
    output: Any = None
    preview: str | None = None
    artifact: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 1
    cancelled: bool = False
    size: int = Field(0, description="bytes the output and preview take in the state")
