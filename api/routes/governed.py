"""Governed runs: Plan → Review by risk tier → Execute → Remember (a GovernedWorkflow each)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.access import START_GOVERNED
from api.auth import require
from api.deps import CallerDep, ClientDep, RegistryDep, SettingsDep
from api.governed import build_governed
from api.guards import OffloadDep
from api.routes.workflows import Started, start_once
from api.schemas.common import ERRORS
from api.schemas.workflows import GovernedCreate, WorkflowPublic
from workflows.contract import SA_PIPELINE, SA_STATE, RunState
from workflows.governed import GovernedWorkflow

router = APIRouter(prefix="/governed", tags=["governed"], responses=ERRORS)
SUMMARY_CHARS = 200


@router.post(
    "",
    response_model=WorkflowPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": WorkflowPublic, "description": "the same request was already started"}
    },
)
async def start_governed(
    caller: CallerDep,
    body: GovernedCreate,
    response: Response,
    client: ClientDep,
    registry: RegistryDep,
    settings: SettingsDep,
    offload: OffloadDep,
) -> WorkflowPublic:
    """Start a governed run (needs `start_governed`); its status, gate and audit are read and
    decided through /workflows/{id} like any run's."""
    require(caller, START_GOVERNED, doing="starting a governed run")
    inp = await offload.run(
        build_governed,
        body.request,
        body.context,
        body.plan,
        body.policy,
        caller,
        registry,
        settings,
    )
    workflow_id = body.workflow_id or f"governed-{uuid.uuid4().hex[:12]}"
    text = f"governed: {body.request}"
    return await start_once(
        Started(client, settings, offload, caller, body, response),
        GovernedWorkflow.run,
        inp,
        workflow_id,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_PIPELINE, "governed"),
                SearchAttributePair(SA_STATE, RunState.RUNNING.value),
            ]
        ),
        static_summary=text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…",
        static_details=f"policy `{inp.policy.name}`, requested by `{caller.principal}`",
    )
