"""The pipeline definition model: what a YAML file in `definitions/` says, validated by pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from activities.models import SecretBinding
from workflows.language.agent import AgentSpec, agent_conflicts
from workflows.language.approval import ApprovalSpec, NotifySpec, approval_conflicts
from workflows.language.limits import (
    MAX_APPROVERS,
    MAX_ATTEMPTS,
    MAX_ID_CHARS,
    MAX_ITERATIONS,
    MAX_NAME_CHARS,
    MAX_NEEDS,
    MAX_OUTPUT_BYTES,
    MAX_PARALLEL,
    MAX_STEPS,
)
from workflows.language.types import (
    PATCHING_ACTIONS,
    PIPELINE_NAME_PATTERN,
    PRINCIPAL_PATTERN,
    PRIORITIES,
    STAGE_ACTIONS,
    STEP_ID_PATTERN,
    Action,
    Duration,
    Expression,
    Id,
    Name,
    Priority,
    Stage,
    Text,
)
from workflows.language.types import Strict as _Strict

__all__ = [
    "PIPELINE_NAME_PATTERN",
    "PRINCIPAL_PATTERN",
    "PRIORITIES",
    "STAGE_ACTIONS",
    "STEP_ID_PATTERN",
    "Action",
    "ApprovalSpec",
    "Duration",
    "Expression",
    "Id",
    "Name",
    "NotifySpec",
    "Priority",
    "Stage",
    "Text",
    "approval_conflicts",
]


class RetrySpec(_Strict):
    max_attempts: int = Field(
        3, ge=1, le=MAX_ATTEMPTS, description="0 is not allowed; 1 means no retry"
    )
    initial_interval: Duration = "1s"
    backoff: float = Field(2.0, ge=1.0, le=10.0)
    max_interval: Duration | None = None
    non_retryable: list[Name] = Field(
        default_factory=list, max_length=MAX_APPROVERS, description="error types never retried"
    )


def step_conflicts(values: Mapping[str, Any]) -> list[str]:
    """A step's fields that do not fit together (see approval_conflicts for why raw values)."""
    out: list[str] = []
    pipeline = values.get("pipeline")
    kinds = [values.get(k) is not None for k in ("tool", "pipeline", "agent")]
    if sum(kinds) != 1:
        out.append("a step needs exactly one of 'tool', 'pipeline' or 'agent'")
    out += agent_conflicts(values)
    each, repeat = values.get("for_each") is not None, values.get("repeat")
    plan = pipeline is not None and not isinstance(pipeline, str)
    if each and repeat is not None:
        out.append("a step cannot have both for_each and repeat (repeat a child pipeline instead)")
    if each and plan:
        out.append("a plan step cannot have for_each")
    if values.get("max_parallel") is not None and not each:
        out.append("max_parallel on a step bounds its for_each items: it needs for_each")
    if isinstance(repeat, Mapping | RepeatSpec):
        limits = repeat if isinstance(repeat, Mapping) else repeat.__dict__
        if limits.get("max_iterations") is None and limits.get("timeout") is None:
            out.append("repeat needs max_iterations or timeout (or both)")
    approval = values.get("approval")
    fields = approval if isinstance(approval, Mapping) else getattr(approval, "__dict__", {})
    if fields.get("per_item") is False and (fields.get("stage") or "before") == "on_failure":
        out.append(
            "approval.per_item: false does not go with stage on_failure (failures are per item)"
        )
    allow = fields.get("allow")
    narrowed = [a for a in allow if a in PATCHING_ACTIONS] if isinstance(allow, list) else []
    whole_list = each and fields.get("per_item") is False
    if narrowed and (whole_list or plan):
        where = (
            "a gate over a whole for_each list (per_item: false)" if whole_list else "a plan's gate"
        )
        out.append(
            f"approval.allow: {narrowed} not offered at {where}: its subject cannot be patched "
            "or run again"
        )
    return out


class CompensateSpec(_Strict):
    tool: Name
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    resolved_tool: str | None = Field(None, description="name@version pinned at validation")


class RepeatSpec(_Strict):
    """Run the step again until a condition over its output holds."""

    until: Expression = Field(description="condition over `output` and `iteration` (from 1)")
    every: Duration | None = Field(
        None, description="durable wait between iterations (at least 1s when left out)"
    )
    max_iterations: int | None = Field(
        None,
        ge=1,
        le=MAX_ITERATIONS,
        description=f"at most this many ({MAX_ITERATIONS} when left out)",
    )
    timeout: Duration | None = Field(None, description="limit for all iterations together")


class CheckSpec(_Strict):
    """A condition the step's output must meet, or the step fails with `message`."""

    condition: Expression = Field(description="condition over `output` (and `item`, `index`)")
    message: Text = "check failed"


class PlanSpec(_Strict):
    """Run a definition produced at run time (a plan) as a child pipeline, once it is valid."""

    definition: Text = Field(description="a ${...} reference to the definition, as data")
    allowed_tools: list[Name] = Field(
        min_length=1,
        max_length=MAX_APPROVERS,
        description="tools the plan may call: its steps', compensations' and gate notifications'",
    )
    max_steps: int = Field(20, ge=1, le=MAX_STEPS, description="tool calls the plan may name")
    allowed_task_queues: list[Name] = Field(
        default_factory=list,
        max_length=MAX_APPROVERS,
        description="task queues the plan's steps may name; none when empty",
    )


class StepSpec(_Strict):
    id: str = Field(pattern=STEP_ID_PATTERN, max_length=MAX_ID_CHARS)
    tool: Name | None = None
    pipeline: Name | PlanSpec | None = Field(
        None, description="a catalog pipeline to run as a child, or a plan made at run time"
    )
    agent: AgentSpec | None = Field(
        None, description="a model in a loop whose every tool call is decided by policy"
    )
    for_each: Text | None = Field(
        None, description="a ${...} reference to a list: the step runs once per item"
    )
    max_parallel: int | None = Field(None, ge=1, le=MAX_PARALLEL, description="items at once")
    repeat: RepeatSpec | None = None
    check: CheckSpec | None = None
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the step's output must follow, checked in an activity"
    )
    local: bool | None = Field(
        None,
        description="run as a Temporal local activity (the tool's default when left out; "
        "pinned at validation)",
    )
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    needs: list[Id] = Field(default_factory=list, max_length=MAX_NEEDS)
    if_: Expression | None = Field(None, alias="if")
    allow_skipped_needs: bool = Field(False, description="run even if a needed step was skipped")
    retry: RetrySpec | None = None
    timeout: Duration | None = Field(None, description="limit for one attempt")
    total_timeout: Duration | None = Field(None, description="limit across all attempts")
    heartbeat_timeout: Duration | None = None
    approval: ApprovalSpec | None = None
    compensate: CompensateSpec | None = None
    task_queue: Name | None = None
    on_error: Literal["fail", "continue"] = "fail"
    max_output_bytes: int | None = Field(None, ge=1, le=MAX_OUTPUT_BYTES)
    resolved_tool: str | None = Field(None, description="name@version pinned at validation")

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        conflicts = step_conflicts(self.__dict__)
        if conflicts:
            raise ValueError("; ".join(conflicts))
        return self


class Defaults(_Strict):
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeout: Duration = "5m"
    heartbeat_timeout: Duration | None = "30s"
    task_queue: Name | None = None


SecretName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
MAX_SECRETS = 50
# The tags of `secrets:`'s two forms; validation leaves them out of the paths it reports.
SECRETS_FORMS = ("names", "bindings")
Secrets = Annotated[
    Annotated[list[SecretName], Tag("names"), Field(max_length=MAX_SECRETS)]
    | Annotated[
        dict[SecretName, SecretBinding | None], Tag("bindings"), Field(max_length=MAX_SECRETS)
    ],
    Discriminator(lambda v: "bindings" if isinstance(v, Mapping) else "names"),
]


class Definition(_Strict):
    name: str = Field(pattern=PIPELINE_NAME_PATTERN, max_length=MAX_NAME_CHARS)
    version: int = Field(1, ge=1, le=1_000_000)
    description: Text = ""
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)
    defaults: Defaults = Field(default_factory=Defaults)
    output: Any = None
    max_parallel: int | None = Field(None, ge=1, le=MAX_PARALLEL)
    summary: Text | None = Field(None, description="Web UI summary template, e.g. '${input.ref}'")
    secrets: Secrets = Field(
        default_factory=list,
        description="the secrets `${secret.NAME}` may name in this definition's text; no other: "
        "a list of names, or a mapping of each name to where it may be sent "
        "({hosts: [...], argv: [...]}) or to nothing",
    )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def binding(self, secret: str) -> SecretBinding | None:
        """Where `secret` may be sent, when `secrets:` says so."""
        return self.secrets.get(secret) if isinstance(self.secrets, dict) else None

    def effective_input(self, given: dict[str, Any]) -> dict[str, Any]:
        """The run input as references see it: declared top-level fields that were left out
        read as their schema `default`, or null when the schema gives none."""
        props = self.input.get("properties")
        if not isinstance(props, dict):
            return given
        missing = {
            k: (v.get("default") if isinstance(v, dict) else None)
            for k, v in props.items()
            if k not in given
        }
        return {**missing, **given} if missing else given

    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)
