"""The caller's inbox and batch decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.workflows import WORKFLOW_ID_PATTERN, DecisionCreate
from workflows.limits import MAX_GATE_ID_CHARS


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
    actions: list[str]


class Inbox(BaseModel):
    items: list[InboxItem] = Field(description="the page's open gates, oldest first")
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
