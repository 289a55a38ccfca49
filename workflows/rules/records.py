"""What a gate and a call's result hold: records the run's state keeps for its steps, items and
agent calls alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.notice import PostRef
from workflows.language.definition import Priority, Stage
from workflows.models import Vote

# What a decided gate does: one of the go-on outcomes (the run goes on) or a stop.
Outcome = Literal["approve", "modify", "skip", "retry", "reject", "cancel"]


class GateRecord(BaseModel):
    """One opening of a step's gate (a new round after a retry is a new record), or an agent
    call's gate."""

    gate: str
    step: str
    item: int | None = None
    call: int | None = Field(None, description="an agent step's call number, for its call gate")
    tool: str | None = Field(None, description="the tool an agent call gate's call is for")
    stage: Stage
    round: int
    subject: Any = None
    digest: str
    opened_at: datetime
    deadline: datetime | None = None
    approvers: list[str]
    escalated: bool = False
    votes: list[Vote] = Field(default_factory=list)
    outcome: Outcome | None = None
    patch: Any = Field(None, description="the agreed patch of a retry, or a skip's substitute")
    response: dict[str, Any] | None = Field(
        None, description="the answer to the gate's form of the vote that decided it"
    )
    decided_by: list[str] = Field(default_factory=list)
    decided_at: datetime | None = None
    modified: bool = False
    reminders: int = 0
    next_reminder: datetime | None = None
    review: str | None = Field(None, description="the review text, its references resolved")
    priority: Priority = "normal"
    posts: list[PostRef] = Field(
        default_factory=list, description="chat messages its notifications posted (MAX_POSTS)"
    )
    posts_told: int = Field(0, description="of them, how many were told the gate was decided")

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
