"""Typed payloads of agent steps: a grant asked for with an approval, its revocation, and what
the status shows of an agent's loop (its calls, its transcript, the run's grants)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from workflows.language.limits import MAX_GRANT_CALLS, MAX_NAME_CHARS

CallState = Literal[
    "checking",
    "waiting",
    "queued",
    "running",
    "succeeded",
    "failed",
    "refused",
    "denied",
    "rejected",
    "cancelled",
]
# How a call was decided before it ran (or did not): by policy, by a person at its gate, by a
# standing grant, or refused for what the model asked (a tool not offered, bad arguments).
CallDecision = Literal["auto", "approve", "deny", "granted", "refused"]
GrantState = Literal["active", "expired", "used", "revoked"]
# A grant's lifetime, exactly as the OpenAPI document states it: one unit, from 1 s to 24 h
# (MAX_GRANT_DURATION), so that every string the pattern allows is a grant the API accepts.
GRANT_DURATION_PATTERN = (
    r"^(?:(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)s"
    r"|(?:[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m"
    r"|(?:[1-9]|1[0-9]|2[0-4])h|1d)$"
)
_GRANT_DURATION = re.compile(GRANT_DURATION_PATTERN)


class GrantSpec(BaseModel):
    """A standing approval given with an `approve` at an agent call gate: later calls of the same
    tool in the same run, under the same gate rules, run without a gate until it ends."""

    model_config = ConfigDict(extra="forbid")

    same_arguments: StrictBool = Field(False, description="only calls with exactly these arguments")
    expires_in: str = Field(
        "1h",
        description="how long it lasts: whole seconds, minutes or hours, or 1d; at most 24h",
        json_schema_extra={"pattern": GRANT_DURATION_PATTERN},
    )
    calls: int | None = Field(
        None, ge=1, le=MAX_GRANT_CALLS, description="how many calls it covers at most"
    )

    @field_validator("calls", mode="before")
    @classmethod
    def _a_json_number(cls, value: Any) -> Any:
        # JSON Schema's integer is any number without a fraction (2.0 too), never a string or
        # a boolean, which pydantic's lax int would otherwise turn into one.
        if isinstance(value, str | bool):
            raise ValueError("calls is a whole number, not a string or a boolean")
        return value

    @field_validator("expires_in")
    @classmethod
    def _at_most_a_day(cls, value: str) -> str:
        if not _GRANT_DURATION.fullmatch(value):
            raise ValueError(
                f"bad grant duration {value[:40]!r}: one whole number of s, m or h, or 1d, "
                "at most 24h, e.g. '2h' or '90m'"
            )
        return value


class RevokeGrant(BaseModel):
    """Ending a grant: by one who gave it, or by an admin (the API says which)."""

    model_config = ConfigDict(extra="forbid")

    grant: str = Field(min_length=1, max_length=40)
    actor: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    admin: bool = False
    reason: str | None = Field(None, max_length=2_000)


class GrantView(BaseModel):
    id: str
    tool: str
    step: str
    gate: str = Field(description="the call gate it was given at")
    granted_by: list[str]
    granted_at: datetime
    expires_at: datetime
    calls: int | None = None
    used: int = 0
    same_arguments: bool = False
    state: GrantState
    revoked_by: str | None = None
    revoked_at: datetime | None = None


class CallView(BaseModel):
    """One tool call an agent's model asked for: what it asked, how it was decided, what ran."""

    n: int
    gate: str = Field(description="`<step>.call-<n>`, also the id of its gate if it had one")
    turn: int
    function: str
    tool: str | None = Field(None, description="name@version; none: not a tool it was offered")
    decision: CallDecision | None = None
    reason: str | None = None
    state: CallState
    risk: str | None = None
    arguments: Any = Field(None, description="what runs (or ran): after the fixed arguments")
    arguments_truncated: bool = False
    proposed: Any = Field(None, description="what the model asked, when it differs")
    changed: bool = Field(False, description="an approver modified the arguments")
    deciders: list[str] = Field(default_factory=list)
    granted_by: str | None = None
    result_preview: str | None = None
    artifact: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None


class MessageView(BaseModel):
    role: str
    content: str | None = Field(None, description="the text (a tool result's JSON), clipped")
    calls: list[str] | None = Field(None, description="an assistant turn's calls: the model's ids")
    call: str | None = Field(None, description="a tool message: the call it answers")


class AgentView(BaseModel):
    """Where an agent step's loop is: turns, tokens, errors, its latest calls and messages."""

    turn: int
    max_turns: int
    tokens: int = 0
    max_total_tokens: int | None = None
    tool_errors: int = 0
    calls: list[CallView] = Field(
        default_factory=list, description="the latest (all: GET .../steps/{step}/calls)"
    )
    calls_total: int = 0
    call_counts: dict[str, int] = Field(default_factory=dict, description="calls in each state")
    transcript: list[MessageView] = Field(
        default_factory=list, description="the latest messages (all: `transcript_artifact`)"
    )
    messages_total: int = 0
    transcript_artifact: dict[str, Any] | None = Field(
        None, description="the whole conversation, written when the loop ends"
    )
    transcript_chunks: int = Field(0, description="earlier messages moved to the artifact store")
