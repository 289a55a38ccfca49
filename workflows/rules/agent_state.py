"""What an agent step's loop keeps in the run's state: its conversation (bounded inline, the rest
in the artifact store), every call its model asked for with how it was decided and what ran, its
bounds so far; and the run's standing grants. Continue-as-new carries all of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.models import AgentCheckResult, Slot
from workflows.agent_models import CallDecision, CallState
from workflows.rules.records import GateRecord, Result

# A call that will not change any more.
FINAL_CALL_STATES = frozenset({"succeeded", "failed", "refused", "denied", "rejected", "cancelled"})


class AgentMessage(BaseModel):
    """One message of the conversation, as the model is sent it."""

    role: Literal["system", "user", "assistant", "tool"]
    content: Any = Field(None, description="text; a tool message's is a JSON object")
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="an assistant turn's calls: id, name, arguments (those that ran)"
    )
    tool_call_id: str | None = None
    n: int | None = Field(None, description="a tool message: the number of the call it answers")
    artifact: dict[str, Any] | None = Field(
        None, description="a result kept in the artifact store: the model call reads it there"
    )
    size: int = Field(0, description="bytes it takes inline")


class AgentCall(BaseModel):
    """One call the model asked for, from its proposal to its end."""

    n: int
    name: str = Field(description="`<step>.call-<n>`: the id of its gate, if it has one")
    turn: int
    call_id: str = Field(description="the model's id for it, echoed by the tool message")
    function: str
    tool: str | None = Field(None, description="name@version; none: no tool offered by that name")
    proposed: Any = Field(None, description="the arguments as the model sent them")
    arguments: dict[str, Any] | None = Field(
        None, description="after the step's fixed arguments: what the gate shows, what runs"
    )
    slots: list[Slot] = Field(default_factory=list)
    decision: CallDecision | None = None
    reason: str | None = None
    state: CallState = "checking"
    risk: str | None = None
    gate: GateRecord | None = None
    granted_by: str | None = None
    changed: bool = Field(False, description="an approver modified the arguments")
    compact: bool = Field(
        False, description="its arguments left the state (the transcript keeps them)"
    )
    preview: str | None = None
    artifact: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    result: Result | None = Field(None, description="back from the tool, not yet acted on")
    message: AgentMessage | None = Field(
        None, description="what the model is told of its end, once every call of its turn ended"
    )

    @property
    def final(self) -> bool:
        return self.state in FINAL_CALL_STATES

    @property
    def out(self) -> bool:
        return self.state == "running" and self.result is None


class Fixed(BaseModel):
    """An entry's fixed arguments as resolved when the step started, with their slots."""

    args: dict[str, Any] = Field(default_factory=dict)
    slots: list[Slot] = Field(default_factory=list)


class AgentRecord(BaseModel):
    """An agent step's loop."""

    turn: int = Field(0, description="model turns asked so far")
    asking: bool = False
    reply: Result | None = Field(None, description="the model's reply, not yet acted on")
    checking: bool = False
    checked: AgentCheckResult | None = Field(None, description="back from the check")
    final: str | None = Field(None, description="a final reply awaiting its output_schema check")
    repairs: int = 0
    tokens: int = 0
    tool_errors: int = 0
    messages: list[AgentMessage] = Field(default_factory=list, description="kept inline")
    messages_total: int = 0
    inline: int = Field(0, description="bytes of the messages kept inline")
    chunks: list[dict[str, Any]] = Field(
        default_factory=list, description="earlier messages in the artifact store, in order"
    )
    storing: int = Field(0, description="messages at the head of `messages` being stored")
    writing: bool = Field(False, description="the whole transcript is being written")
    stored: dict[str, Any] | None = Field(None, description="a write back, not yet acted on")
    ending: Literal["succeeded", "failed"] | None = None
    end_message: str | None = None
    transcript: dict[str, Any] | None = None
    calls: list[AgentCall] = Field(default_factory=list)
    fixed: dict[str, Fixed] = Field(default_factory=dict, description="by function name")
    deadline: datetime | None = None

    @property
    def out(self) -> bool:
        """A model turn, a check, a tool call or a write is out and not yet back."""
        return (
            (self.asking and self.reply is None)
            or (self.checking and self.checked is None)
            or ((self.storing > 0 or self.writing) and self.stored is None)
            or any(c.out for c in self.calls)
        )

    def call(self, n: int) -> AgentCall | None:
        return self.calls[n - 1] if 0 < n <= len(self.calls) else None


class Grant(BaseModel):
    """A standing approval of later calls of one tool under one set of gate rules in this run."""

    id: str
    tool: str = Field(description="name@version")
    step: str
    gate: str
    rules: str = Field(description="digest of the gate rules it was given under")
    arguments: str | None = Field(None, description="digest of the arguments, when it needs them")
    granted_by: list[str]
    granted_at: datetime
    expires_at: datetime
    calls: int | None = None
    used: int = 0
    revoked_by: str | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> Literal["active", "expired", "used", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        if self.calls is not None and self.used >= self.calls:
            return "used"
        return "active"
