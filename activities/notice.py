"""What a gate notification tool is told about the gate (`gate` in its input), besides the text:
enough to address approvers, mint their links and draw buttons. Set by workflow code after the
step's own `with`, so a pipeline cannot forge it; it never carries a link or a token (links are
minted inside the tool, from the worker's keys, so none is ever in history)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# The pipeline language's bounds (workflows/language/limits.py; activities import no workflow code).
MAX_APPROVERS = 100
MAX_NAME_CHARS = 200
Priority = Literal["low", "normal", "high", "urgent"]

# The message refs one gate keeps, to update them once it is decided (the first ones posted).
MAX_POSTS = 20
# The tools that take a `gate` notice; any other notify tool gets the text alone.
NOTICE_TOOLS = frozenset({"notify.webhook", "notify.slack", "notify.email"})

NoticeEvent = Literal["opened", "reminder", "escalation", "decided"]


class PostRef(BaseModel):
    """A chat message a notification posted, to be updated when the gate is decided."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(
        min_length=1, max_length=MAX_NAME_CHARS, description="the channel (or DM) posted to"
    )
    ts: str = Field(min_length=1, max_length=64, description="the message's id in the channel")


class GateNotice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: NoticeEvent
    pipeline: str = Field(max_length=MAX_NAME_CHARS)
    version: str = Field("", max_length=MAX_NAME_CHARS)
    workflow_id: str = Field(min_length=1, max_length=1_000)
    gate: str = Field(min_length=1, max_length=1_000)
    step: str = Field("", max_length=1_000)
    stage: str = Field(max_length=32)
    round: int = Field(ge=0)
    digest: str = Field(max_length=MAX_NAME_CHARS)
    approvers: list[str] = Field(max_length=MAX_APPROVERS)
    actions: list[str] = Field(default_factory=list, max_length=16)
    priority: Priority = "normal"
    deadline: datetime | None = None
    review: str = Field(
        "", max_length=4_000, description="the review text, or a preview of the subject"
    )
    has_form: bool = False
    # Set with event "decided" only.
    outcome: str | None = Field(None, max_length=32)
    decided_by: list[str] = Field(default_factory=list, max_length=MAX_APPROVERS)
    decided_at: datetime | None = None
    posts: list[PostRef] = Field(default_factory=list, max_length=MAX_POSTS)
    # Set when the run delivers what quiet hours held: only these principals are told.
    only: list[str] = Field(default_factory=list, max_length=MAX_APPROVERS)


class NoticeResult(BaseModel):
    """What the notify tools return (their `output`): the chat messages they posted, and the
    principals not told now because of their quiet hours."""

    posts: list[PostRef] = Field(
        default_factory=list,
        max_length=MAX_POSTS,
        description="messages posted, updated when the gate is decided",
    )
    held: list[str] = Field(
        default_factory=list, max_length=MAX_APPROVERS, description="in their quiet hours"
    )
    held_until: AwareDatetime | None = Field(
        None, description="when the first of their quiet hours ends: the run tells them then"
    )
    sent: int = Field(0, description="messages delivered")
