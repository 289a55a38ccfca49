"""The pipeline definition model: what a YAML file in `definitions/` says, validated by pydantic."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.language.durations import parse_duration
from workflows.language.limits import (
    MAX_APPROVERS,
    MAX_ATTEMPTS,
    MAX_EXPRESSION_CHARS,
    MAX_ID_CHARS,
    MAX_ITERATIONS,
    MAX_NAME_CHARS,
    MAX_NEEDS,
    MAX_OUTPUT_BYTES,
    MAX_PARALLEL,
    MAX_QUORUM,
    MAX_STEPS,
    MAX_TEXT_CHARS,
)

Action = Literal["approve", "reject", "modify", "retry", "skip", "cancel"]
Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
Stage = Literal["before", "after", "on_failure"]
STAGE_ACTIONS: dict[str, tuple[str, ...]] = {
    "before": ("approve", "reject", "modify", "skip", "cancel"),
    "after": ("approve", "reject", "modify", "retry", "skip", "cancel"),
    "on_failure": ("retry", "skip", "reject", "cancel"),
}
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
PRINCIPAL_PATTERN = r"^(role|user):[^\s:]+$"


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
Id = Annotated[str, Field(max_length=MAX_ID_CHARS)]
Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
# A pipeline's name (a catalog entry is `name` or `name@version`).
PIPELINE_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Expression = Annotated[str, Field(max_length=MAX_EXPRESSION_CHARS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


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


class NotifySpec(_Strict):
    tool: Name = "notify.webhook"
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class ApprovalSpec(_Strict):
    stage: Stage = "before"
    approvers: list[Name] = Field(
        min_length=1, max_length=MAX_APPROVERS, description="principals: role:<r> or user:<u>"
    )
    quorum: int = Field(1, ge=1, le=MAX_QUORUM, description="distinct approvals needed")
    rejections_to_reject: int = Field(
        1, ge=1, le=MAX_QUORUM, description="distinct rejections that end the gate"
    )
    forbid_self_approval: bool = False
    distinct_from: list[Id] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="gates whose approvers may not approve this one",
    )
    allow: list[Action] | None = None
    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve", "skip", "cancel", "escalate"] = "reject"
    remind_after: Duration | None = None
    max_reminders: int = Field(5, ge=0, le=50, description="reminders sent at most, per round")
    remind_backoff: float = Field(
        2.0, ge=1.0, le=10.0, description="each reminder waits this many times longer"
    )
    escalate_to: list[Name] = Field(default_factory=list, max_length=MAX_APPROVERS)
    escalation_timeout: Duration | None = None
    auto_approve_if: Expression | None = None
    review: Text | None = Field(
        None, description="what the approver is asked to check; may hold ${...} references"
    )
    priority: Priority | dict[Priority, Expression] | Text = Field(
        "normal",
        description="low | normal | high | urgent; a ${...} reference to one of them; or "
        "{urgent: <condition>, high: <condition>, ...}: the first that holds, else normal",
    )
    per_item: bool = Field(True, description="for_each steps: one gate per item, or one in all")
    notify: NotifySpec | None = None

    @field_validator("approvers", "escalate_to")
    @classmethod
    def _principals(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not re.match(PRINCIPAL_PATTERN, p)]
        if bad:
            raise ValueError(f"principals must look like role:<name> or user:<name>, got {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ApprovalSpec:
        conflicts = approval_conflicts(self.__dict__)
        if conflicts:
            raise ValueError("; ".join(conflicts))
        return self

    def actions(self) -> tuple[str, ...]:
        offered = STAGE_ACTIONS[self.stage]
        return tuple(a for a in offered if self.allow is None or a in self.allow)


def approval_conflicts(values: Mapping[str, Any]) -> list[str]:
    """Gate options that do not fit together, each on its own.

    Takes the fields as given, not yet validated, so that the validator can report these next to
    field errors (pydantic skips a model's after-validators once one of its fields failed)."""
    stage = values.get("stage", "before")
    offered = STAGE_ACTIONS.get(stage) if isinstance(stage, str) else None
    on_timeout = values.get("on_timeout", "reject")
    allow = values.get("allow")
    found = []
    if offered is not None and isinstance(allow, list):
        wrong = [a for a in allow if a not in offered]
        if wrong:
            found.append(f"allow: {wrong} not offered at stage {stage!r} ({list(offered)})")
    if on_timeout == "escalate" and not values.get("escalate_to"):
        found.append("on_timeout: escalate needs escalate_to")
    if on_timeout != "reject" and values.get("timeout") is None:
        found.append("on_timeout needs a timeout")
    if on_timeout == "approve" and stage == "on_failure":
        found.append("on_timeout: approve is not possible at stage on_failure")
    approvers = values.get("approvers")
    # Only named users are countable: a role may have any number of members.
    if (
        isinstance(approvers, list)
        and approvers
        and all(isinstance(p, str) and p.startswith("user:") for p in approvers)
    ):
        users = len(set(approvers))
        for key in ("quorum", "rejections_to_reject"):
            wanted = values.get(key, 1)
            if type(wanted) is int and wanted > users:
                found.append(f"{key}: {wanted} votes, but the approvers name only {users} users")
    return found


def step_conflicts(values: Mapping[str, Any]) -> list[str]:
    """A step's fields that do not fit together (see approval_conflicts for why raw values)."""
    out: list[str] = []
    pipeline = values.get("pipeline")
    if (values.get("tool") is None) == (pipeline is None):
        out.append("a step needs exactly one of 'tool' or 'pipeline'")
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
    every: Duration | None = Field(None, description="durable wait between iterations")
    max_iterations: int | None = Field(None, ge=1, le=MAX_ITERATIONS)
    timeout: Duration | None = Field(None, description="limit for all iterations together")


class CheckSpec(_Strict):
    """A condition the step's output must meet, or the step fails with `message`."""

    condition: Expression = Field(description="condition over `output` (and `item`, `index`)")
    message: Text = "check failed"


class PlanSpec(_Strict):
    """Run a definition produced at run time (a plan) as a child pipeline, once it is valid."""

    definition: Text = Field(description="a ${...} reference to the definition, as data")
    allowed_tools: list[Name] = Field(min_length=1, max_length=MAX_APPROVERS)
    max_steps: int = Field(20, ge=1, le=MAX_STEPS)


class StepSpec(_Strict):
    id: str = Field(pattern=STEP_ID_PATTERN, max_length=MAX_ID_CHARS)
    tool: Name | None = None
    pipeline: Name | PlanSpec | None = Field(
        None, description="a catalog pipeline to run as a child, or a plan made at run time"
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
    secrets: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]] = Field(
        default_factory=list,
        max_length=50,
        description="the secrets `${secret.NAME}` may name in this definition's text; no other",
    )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

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
        return {**missing, **given}

    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)
