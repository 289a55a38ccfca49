"""Typed payloads of PipelineWorkflow: its input and result, decisions, gates and the status view."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.agent_models import AgentView, GrantSpec, GrantView
from workflows.gate_models import Channel as Channel
from workflows.gate_models import GateState as GateState
from workflows.gate_models import GateSummary as GateSummary
from workflows.gate_models import GateView as GateView
from workflows.gate_models import Vote as Vote
from workflows.gate_models import VoteLine as VoteLine
from workflows.language.definition import Action, NotifySpec
from workflows.language.limits import (
    MAX_APPROVERS,
    MAX_FORM_FIELDS,
    MAX_GATE_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
)
from workflows.names import AuditKind
from workflows.snapshot import Snapshot


class Principal(BaseModel):
    principal: str
    roles: list[str] = Field(default_factory=list)


# Principals who may hand their gates to one delegate at once (the address book's out-of-office).
MAX_DELEGATIONS = 20


class Delegation(BaseModel):
    """An absent principal whose gates the decider may decide while it lasts; the API sets these
    from the address book (docs/channels.md), the rules check the window again."""

    model_config = ConfigDict(extra="forbid")

    principal: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    until: datetime


class NotifyDefaults(BaseModel):
    """Where gate notifications go when a gate names none (set by the API from its settings)."""

    notify: NotifySpec | None = None
    # Read by nothing now (the notify tools add links); kept so older inputs still load.
    link_base: str = ""


class StartOrigin(BaseModel):
    """A run started on someone's behalf (a schedule firing): whose permissions it needs, checked
    again when it starts, since the owner's roles may have changed since the schedule was made."""

    schedule_id: str
    owner: str
    needs: list[str] = Field(default_factory=list, description="permissions the start needs")


class PipelineInput(BaseModel):
    """What a run starts with. Its payload leaves out what is at its default, as its snapshots
    do (workflows/snapshot.py): every cached run's worker keeps copies of it."""

    # The definition the run follows (compact in payloads, shared between runs: snapshot.py).
    definition: Snapshot
    input: dict[str, Any] = Field(default_factory=dict)
    requester: Principal | None = Field(None, exclude_if=lambda v: v is None)
    approval_mode: Literal["manual", "auto"] = Field("manual", exclude_if=lambda v: v == "manual")
    # Snapshots of catalog pipelines that `pipeline:` steps run, taken when the run started.
    pipelines: dict[str, Snapshot] = Field(default_factory=dict, exclude_if=lambda v: not v)
    notify: NotifyDefaults = Field(
        default_factory=NotifyDefaults, exclude_if=lambda v: v == NotifyDefaults()
    )
    origin: StartOrigin | None = Field(None, exclude_if=lambda v: v is None)
    # The run state carried across continue-as-new (workflows.rules.state.RunData as JSON).
    resume: dict[str, Any] | None = Field(None, exclude_if=lambda v: v is None)


class LifecycleInput(BaseModel):
    """Who pauses, resumes or cancels a run, and why (the `pause`, `resume`, `cancel` signals)."""

    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(None, max_length=200)
    reason: str | None = Field(None, max_length=2_000)


class PipelineResult(BaseModel):
    state: str
    output: Any = None
    error: str | None = None
    steps: dict[str, str] = Field(default_factory=dict)


class Decision(BaseModel):
    """A person's (or a system's) answer to an open gate; see DESIGN.md for the JSON shape."""

    model_config = ConfigDict(extra="forbid")

    # Bounds no tighter than the API's, so what the API accepts always makes a Decision.
    gate: str = Field(min_length=1, max_length=MAX_GATE_ID_CHARS)
    action: Action
    actor: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    roles: list[str] = Field(default_factory=list, max_length=MAX_APPROVERS)
    comment: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    patch: Any = None
    digest: str | None = Field(None, max_length=MAX_NAME_CHARS)
    grant: GrantSpec | None = Field(None, description="with approve at an agent call gate")
    response: dict[str, Any] | None = Field(
        None, max_length=MAX_FORM_FIELDS, description="the answer to the gate's form"
    )
    delegations: list[Delegation] = Field(default_factory=list, max_length=MAX_DELEGATIONS)
    channel: Channel | None = Field(None, description="where the person decided")


class AuditEntry(BaseModel):
    seq: int | None = Field(None, description="position in the run's audit trail, from 1")
    at: datetime
    kind: AuditKind
    gate: str | None = None
    actor: str | None = None
    roles: list[str] = Field(default_factory=list)
    action: str | None = None
    comment: str | None = None
    patch: Any = None
    patch_truncated: bool = Field(
        False, exclude_if=lambda v: not v, description="a patch too large to show is left out"
    )
    digest: str | None = None
    response: dict[str, Any] | None = Field(
        None, exclude_if=lambda v: v is None, description="the answer to the gate's form"
    )
    outcome: Literal["accepted", "refused", "info"] = "info"
    reason: str | None = None
    via: Literal["signal", "update", "system"] = "system"
    on_behalf_of: str | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="the absent principal a delegate decided for",
    )
    channel: Channel | None = Field(None, exclude_if=lambda v: v is None)


class CompensationView(BaseModel):
    state: Literal["succeeded", "failed"]
    error: str | None = None
    at: datetime


class ItemView(BaseModel):
    """One item of a for_each step."""

    index: int
    state: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    reason: str | None = None
    output_preview: str | None = None
    gate: GateView | None = None


class IterationView(BaseModel):
    """One iteration of a repeat step."""

    n: int
    ok: bool
    until: bool
    output_preview: str | None = None
    error: str | None = None
    at: datetime


class StepView(BaseModel):
    id: str
    tool: str | None = None
    pipeline: str | None = None
    state: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    error: str | None = None
    reason: str | None = None
    output_preview: str | None = None
    artifact: dict[str, Any] | None = None
    gate: GateView | None = None
    compensation: CompensationView | None = None
    items: list[ItemView] | None = Field(
        None, description="a for_each step's latest items, in order (all: the items page)"
    )
    items_total: int | None = None
    item_counts: dict[str, int] | None = Field(None, description="items in each state")
    iterations: list[IterationView] | None = Field(
        None, description="a repeat step's latest iterations (all: the iterations page)"
    )
    iterations_total: int | None = None
    plan: dict[str, Any] | None = Field(None, description="a plan step's checked definition")
    plan_truncated: bool = False
    plan_errors: list[str] | None = None
    agent: AgentView | None = Field(None, description="an agent step's loop and calls")


class Progress(BaseModel):
    done: int
    total: int
    percent: float


class RunStatus(BaseModel):
    workflow_id: str
    run_id: str
    state: str
    pipeline: str
    version: int
    requester: Principal | None = None
    approval_mode: str
    started_at: datetime
    revision: int = Field(description="grows by one on every change; SSE event ids use it")
    paused: bool
    steps: list[StepView] = Field(
        description="the steps that moved last, in definition order (all: GET .../steps)"
    )
    steps_total: int = 0
    step_counts: dict[str, int] = Field(default_factory=dict, description="steps in each state")
    progress: Progress
    open_gates: list[GateView] = Field(
        description="open gates, the most urgent first, then the oldest (all: GET .../gates)"
    )
    open_gates_total: int = 0
    output: Any = None
    output_truncated: bool = Field(False, description="an output too large to show is left out")
    error: str | None = None
    audit: list[AuditEntry] = Field(
        description="the latest entries; page through all of them "
        "with the `audit` query or GET /workflows/{id}/audit"
    )
    audit_total: int = 0
    kind: Literal["pipeline", "governed"] = "pipeline"
    continued: int = Field(0, description="times the run continued as new (history bounds)")
    grants: list[GrantView] = Field(default_factory=list, description="standing grants, latest")
    governed: GovernedView | None = Field(None, description="a governed run's cycle")


class GovernedView(BaseModel):
    """Where a governed run is in Plan → Review → Execute → Remember."""

    phase: str = Field(description="plan, review, execute, remember, then the run's state")
    request: str
    context: dict[str, Any] | None = Field(default_factory=dict)
    context_truncated: bool = False
    policy: str
    plan: dict[str, Any] | None = None
    plan_truncated: bool = False
    plan_source: str | None = Field(None, description="given, or llm")
    plan_attempts: int = 0
    plan_errors: list[str] = Field(default_factory=list)
    assessment: dict[str, Any] | None = Field(None, description="tier, score, reasons[]")
    decision: str | None = None
    child_workflow_id: str | None = None
    child_state: str | None = None
    similar: list[str] = Field(default_factory=list, description="past runs the planner was shown")
    durations_ms: dict[str, int] = Field(default_factory=dict)


class AuditPageInput(BaseModel):
    """A page of the audit trail: entries with `seq` greater than `after`."""

    after: int = Field(0, ge=0)
    limit: int = Field(100, ge=1, le=500)


class AuditArchiveRef(BaseModel):
    """Older entries moved to the artifact store: read them from `path`, check `sha256`."""

    first_seq: int
    last_seq: int
    path: str
    sha256: str
    prev_sha256: str | None = None


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    total: int
    next_after: int | None = Field(None, description="pass as `after` for the next page")
    archived: list[AuditArchiveRef] = Field(
        default_factory=list, description="chunks holding entries older than `entries`"
    )


class GateRefusal(BaseModel):
    """Why a decision was refused; `code` maps to an HTTP status in the API."""

    code: Literal[
        "unknown_gate",
        "gate_not_open",
        "action_not_allowed",
        "not_authorized",
        "already_voted",
        "self_approval",
        "separation_of_duties",
        "digest_mismatch",
        "bad_patch",
        "bad_grant",
        "bad_response",
        "unknown_grant",
        "grant_not_active",
    ]
    message: str


class ChildGatesInput(BaseModel):
    """A child pipeline run telling its parent which of its gates are open now."""

    workflow_id: str
    gates: list[GateSummary] = Field(default_factory=list)
