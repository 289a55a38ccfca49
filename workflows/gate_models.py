"""What the outside sees of a gate: a vote, the gate's view, and its inbox line (the line a run
keeps in its memo, which the API's inbox reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from workflows.agent_models import GrantSpec
from workflows.language.definition import Priority, Stage

GateState = Literal["open", "approved", "rejected", "modified", "retried", "skipped", "cancelled"]
# Where a person decided (a Decision's `channel`, kept in its vote and audit entry).
Channel = Literal["api", "web", "batch", "link", "slack", "mcp"]


class Vote(BaseModel):
    actor: str
    action: str
    comment: str | None = None
    at: datetime
    roles: list[str] = Field(default_factory=list)
    digest: str | None = Field(None, description="the subject this vote was cast on")
    patch: Any = None
    patch_truncated: bool = Field(
        False, exclude_if=lambda v: not v, description="a patch too large to show is left out"
    )
    grant: GrantSpec | None = Field(None, exclude_if=lambda v: v is None)
    on_behalf_of: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="the absent principal a delegate voted for",
    )
    channel: Channel | None = Field(None, exclude_if=lambda v: v is None)
    response: dict[str, Any] | None = Field(
        None, exclude_if=lambda v: v is None, description="the answer to the gate's form"
    )


class VoteLine(BaseModel):
    """Who voted what at a gate, as the inbox lists it."""

    principal: str
    action: str


class GateView(BaseModel):
    gate: str
    workflow_id: str | None = Field(None, description="set when the gate is a child run's")
    step: str | None = Field(None, description="the step it gates (for a for_each item: its step)")
    item: int | None = Field(None, description="the item's index, for a per-item gate")
    priority: Priority = "normal"
    stage: Stage
    state: GateState
    round: int
    approvers: list[str]
    escalated: bool = False
    quorum: int
    approvals: list[Vote] = Field(default_factory=list, description="the latest (see the totals)")
    rejections: list[Vote] = Field(default_factory=list, description="the latest")
    approvals_total: int = Field(0, description="votes to go on, all of them")
    rejections_total: int = Field(0, description="votes to stop, all of them")
    actions: list[str]
    digest: str
    review: str | None = None
    subject: Any = None
    subject_truncated: bool = Field(False, description="a subject too large to show is left out")
    modified: bool = False
    lapsed: int = Field(0, description="votes cast on an earlier subject, before a modify")
    reminders: int = 0
    opened_at: datetime
    deadline: datetime | None = None
    decided_at: datetime | None = None
    outcome: str | None = None
    decided_by: str | None = None
    form: dict[str, Any] | None = Field(
        None, description="the gate's form: what a decision's `response` answers (docs/gates.md)"
    )
    response: dict[str, Any] | None = Field(
        None, description="the answer to the form that the deciding vote gave"
    )


class GateSummary(BaseModel):
    """What an inbox shows of an open gate; kept in the run's memo, readable from visibility."""

    gate: str
    stage: Stage
    round: int
    approvers: list[str]
    actions: list[str]
    voted: list[str] = Field(description="principals who already voted (they cannot again)")
    digest: str
    review: str | None = None
    subject: Any = Field(None, description="what is under review, when small enough to list")
    subject_truncated: bool = False
    opened_at: datetime
    deadline: datetime | None = None
    quorum: int = 1
    priority: Priority = "normal"
    workflow_id: str | None = Field(None, description="the run the gate is in, when not this one")
    requester: str | None = Field(None, description="who started the run the gate is in")
    votes: list[VoteLine] = Field(
        default_factory=list, description="the latest votes on the subject under review"
    )
    votes_total: int = Field(0, description="votes on the subject under review, all of them")
    approvals: int = Field(0, description="of them, votes to go on (quorum progress)")
    form: dict[str, Any] | None = Field(None, description="the gate's form")
