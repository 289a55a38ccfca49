"""What /versions answers: the worker deployment's builds and the runs still open on each."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from activities.config_versioning import BUILD_ID


class BuildPublic(BaseModel):
    build_id: str
    status: str = Field(
        description="Temporal's word for it: current, ramping, draining (no new runs; pinned "
        "ones may be open), drained (Temporal found none open), inactive (never current), created"
    )
    created_at: datetime | None
    current_since: datetime | None = Field(description="when it last became current")
    drained_since: datetime | None = Field(description="when Temporal found it drained")
    open_runs: int = Field(description="open Stepgate runs pinned to it, counted now")


class VersionsPublic(BaseModel):
    """The deployment workers of this installation poll as (STEPGATE_DEPLOYMENT_NAME)."""

    deployment: str
    current_build_id: str | None = Field(description="where new runs start; null: unversioned")
    ramping_build_id: str | None
    ramping_percentage: float
    builds: list[BuildPublic] = Field(description="the newest first")
    unversioned_open_runs: int = Field(
        description="open Stepgate runs pinned to no build: started by unversioned (0.1.x) "
        "workers, or not yet taken by any worker"
    )
    last_modified_by: str | None = Field(
        description="who last changed the current build (`stepgate-api:<principal>` through "
        "this API)"
    )


class CurrentBuildUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    build_id: str = Field(pattern=BUILD_ID.pattern, description="a build whose workers poll")


class CurrentBuildPublic(BaseModel):
    deployment: str
    build_id: str
    previous_build_id: str | None = Field(description="the build that was current; null: none")
