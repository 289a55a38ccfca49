"""Payloads that cross the workflow/activity boundary. Workflows import these, nothing else here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

# Re-exported: the definition language declares bindings with it.
from activities.bindings import SecretBinding as SecretBinding

SECRET_PREFIX = "secret."
ARTIFACT_MARKER = "$artifact"
_INDEX = re.compile(r"-?[0-9]{1,6}")


class PathError(ValueError):
    """A reference path does not lead anywhere in the data; the message says where it stopped."""


def step_into(value: Any, key: str, where: str) -> Any:
    """One step of a reference path into JSON data: a field of an object, or an index of a list
    (`items.0`, `items.-1`). The one path walker: workflows resolve references with it and the
    activity follows paths into stored outputs with it, so both agree on every path."""
    if isinstance(value, dict):
        if key not in value:
            raise PathError(f"{where}: no field {key!r}")
        return value[key]
    if isinstance(value, list) and _INDEX.fullmatch(key):
        index = int(key)
        if not -len(value) <= index < len(value):
            raise PathError(f"{where}: index {index} out of range")
        return value[index]
    raise PathError(f"{where}: cannot take {key!r} of {type(value).__name__}")


def walk_path(value: Any, path: list[str] | tuple[str, ...], where: str) -> Any:
    for key in path:
        value = step_into(value, key, where)
    return value


class ArtifactRef(BaseModel):
    """Where a stored file lives and what it holds; a step output too large for history is one."""

    uri: str
    path: str
    size: int
    sha256: str
    media_type: str = "application/octet-stream"


class Slot(BaseModel):
    """A place in a call's arguments that the definition's own text filled with something only
    the activity resolves: a secret inside text, or an output kept in the artifact store.

    Nothing else in the arguments is ever resolved: text or objects that merely look like a
    secret reference or an artifact marker (run input, tool output, an approver's patch) are data.
    A slot whose value is no longer `expect` (a patch replaced it) is data too.
    """

    path: list[str | int]
    expect: Any = Field(description="what the workflow put at `path`")
    parts: list[tuple[Literal["text", "secret"], str]] | None = Field(
        None, description="text to assemble, secrets by name among literal text"
    )
    artifact: ArtifactRef | None = Field(None, description="a stored output to read")
    artifact_path: list[str] = Field(default_factory=list, description="then follow this path")


class ToolCall(BaseModel):
    """One tool invocation: the activity input for every tool. Its payload leaves out the
    fields at their defaults (the activity reads them back as the defaults): a local call's input
    stays in its worker's memory for as long as the run is cached."""

    tool: str
    version: str
    step_id: str
    workflow_id: str
    run_id: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    scope: Literal["main", "compensate", "notify"] = Field("main", exclude_if=lambda v: v == "main")
    max_output_bytes: int | None = Field(None, exclude_if=lambda v: v is None)
    # What the run can still keep of this call: an output over `inline_bytes` goes to the
    # artifact store, and its preview is at most `preview_bytes` (None: the worker's settings).
    inline_bytes: int | None = Field(None, exclude_if=lambda v: v is None)
    preview_bytes: int | None = Field(None, exclude_if=lambda v: v is None)
    # None only from runs started before slots existed, whose calls resolve the old way.
    slots: list[Slot] | None = Field(None, exclude_if=lambda v: v is None)
    # The step's `output_schema` (it passed jsonschema_safe.schema_issues at validation): the
    # activity checks the tool's output against it before anything else sees the output.
    output_schema: dict[str, Any] | None = Field(None, exclude_if=lambda v: v is None)
    # Where the secrets the definition binds may go (activities/bindings.py): the activity
    # refuses to send a bound secret the call holds anywhere else.
    secret_bindings: dict[str, SecretBinding] = Field(
        default_factory=dict, exclude_if=lambda v: not v
    )


class ToolResult(BaseModel):
    """A tool's validated output, or a reference to it when it was too large for history."""

    output: Any = None
    artifact: ArtifactRef | None = Field(None, exclude_if=lambda v: v is None)
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


# Checks the workflow asks for where workflow code must not validate (schemas, tool models).
CHECK_ACTIVITY = "stepgate.check"


class CheckCall(BaseModel):
    """Does `value` fit a tool's input or output model, or a JSON Schema?"""

    value: Any = None
    tool: str | None = Field(None, description="name@version: check against this tool's model")
    part: Literal["input", "output"] = "input"
    json_schema: dict[str, Any] | None = Field(None, description="or against this JSON Schema")
    where: str = Field("", description="prefix for the messages, e.g. `input for pipeline 'x'`")
    # A patched input of a step whose definition names secrets: the input before the patch and
    # the secrets' slots, so the check can refuse a patch that moves a secret elsewhere.
    before: Any = Field(None, description="the input as the workflow made it, before the patch")
    slots: list[Slot] = Field(default_factory=list, description="the step's secret slots")
    secrets: dict[str, SecretBinding | None] = Field(
        default_factory=dict, description="each secret the slots name, with its binding if any"
    )


class CheckResult(BaseModel):
    issues: list[str] = Field(default_factory=list, description="each with the path it concerns")
    checked: bool = Field(True, description="false when this worker does not have the tool")


# Older audit entries move out of workflow state into the artifact store, chained by hash.
ARCHIVE_AUDIT_ACTIVITY = "stepgate.archive_audit"


class AuditChunk(BaseModel):
    workflow_id: str
    first_seq: int
    last_seq: int
    prev_sha256: str | None = None
    entries: list[dict[str, Any]]


class AuditChunkStored(BaseModel):
    path: str
    sha256: str


# A for_each step's list read back from a step output kept in the artifact store.
LOAD_LIST_ACTIVITY = "stepgate.load_list"


class ListCall(BaseModel):
    artifact: ArtifactRef
    path: list[str] = Field(default_factory=list, description="where the list is in the output")
    max_bytes: int = Field(description="refuse a value whose JSON is larger (it enters history)")


class ListResult(BaseModel):
    value: Any = None


# Checking a definition made at run time (a plan) before it may run.
VALIDATE_PLAN_ACTIVITY = "stepgate.validate_plan"


class PlanCall(BaseModel):
    definition: Any = None
    allowed_tools: list[str] = Field(default_factory=list)
    max_steps: int = 20
    allowed_task_queues: list[str] = Field(
        default_factory=list, description="task queues the plan may name; none when empty"
    )


class PlanResult(BaseModel):
    definition: dict[str, Any] | None = Field(None, description="the valid plan, tools pinned")
    errors: list[str] = Field(default_factory=list, description="every problem, with its path")
    risks: dict[str, str] = Field(
        default_factory=dict,
        description="each call's risk (low, medium, high) as its tool says, by the call's path "
        "(`steps[0].tool`, `steps[0].compensate.tool`, `steps[0].approval.notify.tool`); "
        "results recorded before calls had paths key the step's own tool by its step id",
    )


# The memory of governed runs: one pattern per run that reached a decision, searched by text.
MEMORY_WRITE_ACTIVITY = "stepgate.memory.write"
MEMORY_SEARCH_ACTIVITY = "stepgate.memory.search"
# Characters of a search's text (GET /memory's `q` too).
MAX_MEMORY_QUERY_CHARS = 2_000


class MemoryPattern(BaseModel):
    """What a governed run leaves for later plans to learn from."""

    workflow_id: str = Field(description="one pattern per governed run: writing again replaces it")
    request: str
    context_summary: str = ""
    plan: dict[str, Any] | None = None
    tier: int | None = None
    score: float | None = None
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    decision: str | None = Field(
        None, description="approved, modified, rejected, cancelled, timeout, or auto (tier 1)"
    )
    deciders: list[str] = Field(default_factory=list)
    comments: list[str] = Field(default_factory=list)
    outcome: str = Field(description="completed, failed, cancelled or rejected")
    error: str | None = None
    durations_ms: dict[str, int] = Field(default_factory=dict, description="per phase")
    created_at: datetime


class MemoryHit(BaseModel):
    id: int
    score: float = Field(description="text relevance; higher is closer")
    pattern: MemoryPattern


class MemorySearch(BaseModel):
    q: str = Field(max_length=MAX_MEMORY_QUERY_CHARS)
    limit: int = Field(5, ge=1, le=100)


class MemorySearchResult(BaseModel):
    hits: list[MemoryHit] = Field(default_factory=list)


# An agent step's checks of what its model asked for: each call's arguments against its tool's
# input model (and the call's risk), a final reply against the step's output_schema.
AGENT_CHECK_ACTIVITY = "stepgate.agent.check"
# Writing an agent's conversation to the artifact store: a chunk of earlier messages, or the
# whole transcript (earlier chunks first) when the loop ends.
AGENT_TRANSCRIPT_ACTIVITY = "stepgate.agent.transcript"


class CallToCheck(BaseModel):
    n: int
    tool: str = Field(description="name@version")
    arguments: dict[str, Any] = Field(default_factory=dict)


class AgentCheck(BaseModel):
    calls: list[CallToCheck] = Field(default_factory=list)
    reply: str | None = Field(None, description="a final reply to parse as JSON and check")
    json_schema: dict[str, Any] | None = None


class CallCheck(BaseModel):
    n: int
    issues: list[str] = Field(default_factory=list)
    risk: Literal["low", "medium", "high"] = "high"


class AgentCheckResult(BaseModel):
    calls: list[CallCheck] = Field(default_factory=list)
    reply_issues: list[str] = Field(default_factory=list)
    reply_json: Any = None


class TranscriptWrite(BaseModel):
    workflow_id: str
    name: str = Field(description="the artifact's name within the run's folder")
    parts: list[ArtifactRef] = Field(default_factory=list, description="earlier chunks, first")
    messages: list[dict[str, Any]] = Field(default_factory=list)
    slots: list[Slot] = Field(default_factory=list, description="results read from the store")
