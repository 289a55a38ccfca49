"""The words of the definition language: actions, priorities, stages, bounded strings and
durations, and the strict base every model of the language uses."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from workflows.language.durations import parse_duration
from workflows.language.limits import (
    MAX_EXPRESSION_CHARS,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
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
# What patches or reruns a gate's subject: a gate over a whole for_each list, and a plan's gate,
# do not offer these (a changed list or plan cannot be applied item by item or checked again).
PATCHING_ACTIONS = ("modify", "retry")
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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)
