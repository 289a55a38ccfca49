"""The pipeline definition model: what a YAML file in `definitions/` says, validated by pydantic."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.durations import parse_duration

Action = Literal["approve", "reject", "modify", "retry", "skip", "cancel"]
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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class RetrySpec(_Strict):
    max_attempts: int = Field(3, ge=1, le=100, description="0 is not allowed; 1 means no retry")
    initial_interval: Duration = "1s"
    backoff: float = Field(2.0, ge=1.0, le=10.0)
    max_interval: Duration | None = None
    non_retryable: list[str] = Field(default_factory=list, description="error types never retried")


class NotifySpec(_Strict):
    tool: str = "notify.webhook"
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class ApprovalSpec(_Strict):
    stage: Stage = "before"
    approvers: list[str] = Field(min_length=1, description="principals: role:<r> or user:<u>")
    quorum: int = Field(1, ge=1, description="distinct approvals needed")
    rejections_to_reject: int = Field(1, ge=1, description="distinct rejections that end the gate")
    forbid_self_approval: bool = False
    distinct_from: list[str] = Field(
        default_factory=list, description="gates whose approvers may not approve this one"
    )
    allow: list[Action] | None = None
    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve", "skip", "cancel", "escalate"] = "reject"
    remind_after: Duration | None = None
    max_reminders: int = Field(5, ge=0, le=50, description="reminders sent at most, per round")
    remind_backoff: float = Field(
        2.0, ge=1.0, le=10.0, description="each reminder waits this many times longer"
    )
    escalate_to: list[str] = Field(default_factory=list)
    escalation_timeout: Duration | None = None
    auto_approve_if: str | None = None
    review: str | None = Field(None, description="what the approver is asked to check")
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
        offered = STAGE_ACTIONS[self.stage]
        if self.allow is not None:
            wrong = [a for a in self.allow if a not in offered]
            if wrong:
                raise ValueError(
                    f"allow: {wrong} not offered at stage {self.stage!r} ({list(offered)})"
                )
        if self.on_timeout == "escalate" and not self.escalate_to:
            raise ValueError("on_timeout: escalate needs escalate_to")
        if self.on_timeout != "reject" and self.timeout is None:
            raise ValueError("on_timeout needs a timeout")
        if self.on_timeout == "approve" and self.stage == "on_failure":
            raise ValueError("on_timeout: approve is not possible at stage on_failure")
        return self

    def actions(self) -> tuple[str, ...]:
        offered = STAGE_ACTIONS[self.stage]
        return tuple(a for a in offered if self.allow is None or a in self.allow)


class CompensateSpec(_Strict):
    tool: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    retry: RetrySpec | None = None
    timeout: Duration | None = None
    resolved_tool: str | None = Field(None, description="name@version pinned at validation")


class StepSpec(_Strict):
    id: str = Field(pattern=STEP_ID_PATTERN)
    tool: str | None = None
    pipeline: str | None = Field(None, description="run this catalog pipeline as a child workflow")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    needs: list[str] = Field(default_factory=list)
    if_: str | None = Field(None, alias="if")
    allow_skipped_needs: bool = Field(False, description="run even if a needed step was skipped")
    retry: RetrySpec | None = None
    timeout: Duration | None = Field(None, description="limit for one attempt")
    total_timeout: Duration | None = Field(None, description="limit across all attempts")
    heartbeat_timeout: Duration | None = None
    approval: ApprovalSpec | None = None
    compensate: CompensateSpec | None = None
    task_queue: str | None = None
    on_error: Literal["fail", "continue"] = "fail"
    max_output_bytes: int | None = Field(None, ge=1)
    resolved_tool: str | None = Field(None, description="name@version pinned at validation")

    @model_validator(mode="after")
    def _one_kind(self) -> StepSpec:
        if (self.tool is None) == (self.pipeline is None):
            raise ValueError("a step needs exactly one of 'tool' or 'pipeline'")
        return self


class Defaults(_Strict):
    retry: RetrySpec = Field(default_factory=RetrySpec)
    timeout: Duration = "5m"
    heartbeat_timeout: Duration | None = "30s"
    task_queue: str | None = None


class Definition(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    version: int = Field(1, ge=1)
    description: str = ""
    input: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    steps: list[StepSpec] = Field(min_length=1)
    defaults: Defaults = Field(default_factory=Defaults)
    output: Any = None
    max_parallel: int | None = Field(None, ge=1)
    summary: str | None = Field(None, description="Web UI summary template, e.g. '${input.ref}'")

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
