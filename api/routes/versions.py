"""The worker deployment's builds (`versions`, admins by default): which build new runs start
on, and which older builds still hold open runs, so that their workers can be stopped once
drained (docs/versioning.md)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends
from temporalio.service import RPCError

from activities.access import VERSIONS
from api.auth import Caller
from api.deps import ClientDep, SettingsDep, needs
from api.errors import ApiError, from_rpc
from api.guards import StrictJsonRoute
from api.schemas.common import ERRORS
from api.schemas.versions import (
    BuildPublic,
    CurrentBuildPublic,
    CurrentBuildUpdate,
    VersionsPublic,
)
from workflows.deployment import BuildNotReady, describe, set_current

router = APIRouter(
    prefix="/versions", tags=["versions"], responses=ERRORS, route_class=StrictJsonRoute
)
log = structlog.get_logger("stepgate.api")
VersionsDep = Annotated[Caller, Depends(needs(VERSIONS))]


@router.get("", response_model=VersionsPublic)
async def list_versions(_: VersionsDep, client: ClientDep, settings: SettingsDep) -> VersionsPublic:
    """Each build of the deployment with its status as Temporal reports it and the open
    Stepgate runs pinned to it, and the open runs no build holds (unversioned)."""
    try:
        found = await describe(client, settings.stepgate_deployment_name)
    except RPCError as err:
        raise from_rpc(err) from None
    return VersionsPublic(
        deployment=found.name,
        current_build_id=found.current_build_id,
        ramping_build_id=found.ramping_build_id,
        ramping_percentage=found.ramping_percentage,
        builds=[BuildPublic.model_validate(b, from_attributes=True) for b in found.builds],
        unversioned_open_runs=found.unversioned_open_runs,
        last_modified_by=found.last_modified_by,
    )


@router.post("/current", response_model=CurrentBuildPublic)
async def set_current_version(
    caller: VersionsDep, client: ClientDep, settings: SettingsDep, body: CurrentBuildUpdate
) -> CurrentBuildPublic:
    """Make a build current: new runs start on it; runs pinned to other builds finish there.
    409 when Temporal refuses (no worker of that build has polled)."""
    name = settings.stepgate_deployment_name
    try:
        previous = await set_current(
            client, name, body.build_id, f"stepgate-api:{caller.principal}"
        )
    except BuildNotReady as err:
        raise ApiError(409, "build_not_ready", str(err)) from None
    except RPCError as err:
        raise from_rpc(err) from None
    log.info(
        "current build set", build_id=body.build_id, previous=previous, principal=caller.principal
    )
    return CurrentBuildPublic(deployment=name, build_id=body.build_id, previous_build_id=previous)
