"""Payloads that cross the workflow/activity boundary. Workflows import these, nothing else here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

SECRET_PREFIX = "secret."
ARTIFACT_MARKER = "$artifact"


class ArtifactRef(BaseModel):
    """Where a stored file lives and what it holds; a step output too large for history is one."""

    uri: str
    path: str
    size: int
    sha256: str
    media_type: str = "application/octet-stream"


class ToolCall(BaseModel):
    """One tool invocation: the activity input for every tool."""

    tool: str
    version: str
    step_id: str
    workflow_id: str
    run_id: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    scope: Literal["main", "compensate", "notify"] = "main"
    max_output_bytes: int | None = None


class ToolResult(BaseModel):
    """A tool's validated output, or a reference to it when it was too large for history."""

    output: Any = None
    artifact: ArtifactRef | None = None
    preview: str = ""
    size: int = 0
    attempt: int = 1


# The activity a scheduled run calls first, to check that its owner may still start it.
AUTHORIZE_ACTIVITY = "stepgate.authorize"


class AuthorizeCall(BaseModel):
    principal: str
    needs: list[str] = Field(default_factory=list, description="permission names")


class AuthorizeResult(BaseModel):
    allowed: bool
    reason: str | None = Field(None, description="why not, naming the missing permission")
