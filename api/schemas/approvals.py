"""The caller's inbox and batch decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.workflows import WORKFLOW_ID_PATTERN, DecisionCreate
from workflows.language.definition import PRIORITIES, Priority
from workflows.language.limits import MAX_GATE_ID_CHARS
from workflows.models import VoteLine


class InboxItem(BaseModel):
    workflow_id: str
    pipeline: str
    gate: str
    stage: str
    review: str | None
    subject: Any = Field(
        description="what is under review (null when too large: see the run's status)"
    )
    subject_truncated: bool = False
    digest: str
    opened_at: datetime
    deadline: datetime | None
    priority: Priority = Field("normal", description="low | normal | high | urgent")
    actions: list[str]
    approvers: list[str] = Field(description="who may decide: role:<r> and user:<u>")
    requester: str | None = Field(description="who started the run (null: not recorded)")
    quorum: int = Field(description="votes to go on that the gate needs")
    approvals: int = Field(description="votes to go on cast so far (quorum progress)")
    votes: list[VoteLine] = Field(
        description="the latest votes on the subject under review: principal and action"
    )
    votes_total: int = Field(description="votes on the subject under review, all of them")
    form: dict[str, Any] | None = Field(
        description="the gate's form: a decision's `response` answers it (docs/gates.md)"
    )


_RANK = {p: i for i, p in enumerate(PRIORITIES)}


def inbox_order(item: InboxItem) -> tuple[int, bool, float, float, str, str]:
    """The inbox's order: urgent first, then the soonest deadline (none last), then the oldest
    gate; run and gate break ties so the order never depends on how the runs were read.
    Timestamps, not datetimes: one naive time in a memo must not make the sort raise."""
    deadline = item.deadline.timestamp() if item.deadline else 0.0
    return (
        _RANK[item.priority],
        item.deadline is None,
        deadline,
        item.opened_at.timestamp(),
        item.workflow_id,
        item.gate,
    )


class Inbox(BaseModel):
    items: list[InboxItem] = Field(
        description="the page's open gates, most urgent first, then by deadline (soonest "
        "first, none last), then oldest first; sorted within this page of runs only"
    )
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page of runs; null on the last page"
    )


class BatchItem(DecisionCreate):
    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(pattern=WORKFLOW_ID_PATTERN)
    gate: str = Field(min_length=1, max_length=MAX_GATE_ID_CHARS)


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1, max_length=100)


class BatchResult(BaseModel):
    workflow_id: str
    gate: str
    ok: bool
    status_code: int
    error: dict[str, Any] | None = None
    gate_state: str | None = None


class BatchPublic(BaseModel):
    results: list[BatchResult]
