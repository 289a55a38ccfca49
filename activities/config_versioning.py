"""The Worker Versioning part of Settings (activities/config.py), in a module of its own so that
one stays readable: which deployment and build a worker runs as, and who makes a build current."""

from __future__ import annotations

import re

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

DEFAULT_DEPLOYMENT_NAME = "stepgate"
# Names go into visibility queries (`TemporalWorkerDeploymentVersion = "<name>:<build id>"`), so
# they hold nothing that would need quoting. A deployment name has no `.`: Temporal writes a
# version as `<name>.<build id>` and splits it at the first dot.
DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
BUILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class VersioningSettings(BaseSettings):
    """Settings inherits these; env names are the field names in upper case."""

    stepgate_worker_versioning: bool = Field(
        True,
        description="the worker runs as a Worker Deployment Version and pins the runs it starts "
        "to it; false: an unversioned worker (what 0.1.x ran)",
    )
    stepgate_deployment_name: str = Field(
        DEFAULT_DEPLOYMENT_NAME,
        description="the Worker Deployment the worker's builds belong to (one per Stepgate "
        "installation in a namespace)",
    )
    stepgate_build_id: str | None = Field(
        None,
        description="the worker's build id (default: the package version + a hash of the "
        "workflow code, so a change to workflow code is a new build)",
    )
    stepgate_set_current_version: bool = Field(
        False,
        description="at start, make the worker's build the deployment's current version: for "
        "one build at a time (`make run`, compose); with several, an operator runs `stepgate "
        "versions set-current`",
    )

    @field_validator("stepgate_deployment_name")
    @classmethod
    def _deployment_name(cls, value: str) -> str:
        if not DEPLOYMENT_NAME.match(value):
            raise ValueError("letters, digits, `_` and `-` only (no `.`), at most 64")
        return value

    @field_validator("stepgate_build_id")
    @classmethod
    def _build_id(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not BUILD_ID.match(value):
            raise ValueError(
                "letters, digits, `.`, `_`, `+` and `-` only, starting with a letter or a digit, "
                "at most 128"
            )
        return value
