"""A gate's definition: who decides, how many, what they may do, what they are told and when
(the `approval:` key of a step), and the options that do not fit together."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workflows.language.forms import form_issues
from workflows.language.limits import MAX_APPROVERS, MAX_QUORUM, MAX_STEPS
from workflows.language.types import (
    PRINCIPAL_PATTERN,
    STAGE_ACTIONS,
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
    decision_valid_for: Duration | None = Field(
        None,
        description="an approval older than this when the step's call would start is void: "
        "the gate opens again (stage before only)",
    )
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
    form: dict[str, Any] | None = Field(
        None,
        description="what a reviewer answers besides the action: a flat JSON Schema object of "
        "string, number, integer, boolean and enum fields (see docs/gates.md, Forms)",
    )

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
        if self.form is not None:
            conflicts += [f"{path}: {why}" for path, why in form_issues(self.form)]
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
    if values.get("decision_valid_for") is not None:
        if stage != "before":
            found.append("decision_valid_for: only at stage before, whose approval starts the call")
        if values.get("per_item") is False:
            found.append(
                "decision_valid_for: not with per_item: false (one approval lets every item of "
                "the list start)"
            )
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
