"""Recurring runs on Temporal Schedules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from api.schemas.common import CatalogRef, InlineDefinition
from workflows.language.durations import parse_duration
from workflows.language.limits import MAX_NAME_CHARS

SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
# How many coming ticks a schedule shows: Temporal's schedule description computes ten.
NEXT_ACTION_TIMES = 10


# Exactly one of cron and interval, each a string when given (null reads as absent).
_ONE_TIMING: JsonDict = {
    "oneOf": [
        {"required": [k], "properties": {k: {"type": "string"}}} for k in ("cron", "interval")
    ]
}


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_TIMING)

    schedule_id: str | None = Field(None, pattern=SCHEDULE_ID_PATTERN)
    definition: CatalogRef | InlineDefinition
    input: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = Field(
        None, max_length=MAX_NAME_CHARS, description="a cron expression, e.g. `0 6 * * 1-5`"
    )
    interval: str | None = Field(
        None, max_length=MAX_NAME_CHARS, description="a duration, e.g. `15m`"
    )
    approval_mode: Literal["manual", "auto"] = "manual"

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron or interval")
        if self.interval is not None:
            parse_duration(self.interval)
        return self


class SchedulePublic(BaseModel):
    schedule_id: str
    owner: str | None = Field(None, description="the principal who created it")
    pipeline: str | None = None
    cron: str | None = None
    interval: str | None = None
    paused: bool = False
    next_action_times: list[AwareDatetime] = Field(
        default_factory=list,
        max_length=NEXT_ACTION_TIMES,
        description=(
            "when the schedule will start its next runs: UTC, earliest first, as Temporal"
            " computed them from the spec"
        ),
    )


class ScheduleList(BaseModel):
    items: list[SchedulePublic]


class ScheduleDeleted(BaseModel):
    schedule_id: str
    deleted: bool = True
