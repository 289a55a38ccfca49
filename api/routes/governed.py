"""Governed runs: Plan → Review by risk tier → Execute → Remember (a GovernedWorkflow each)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.access import START_GOVERNED
from api.auth import require
from api.deps import CallerDep, ClientDep, ParseDep, RegistryDep, SettingsDep
from api.governed import build_governed
from api.guards import StrictJsonRoute
from api.runs import clip_summary
from api.schemas.common import ERRORS
from api.schemas.workflows import GovernedCreate, WorkflowPublic
from api.starts import Started, start_once
from workflows.contract import GOVERNED_PIPELINE, SA_PIPELINE, SA_STATE, RunState
from workflows.governed import GovernedWorkflow

router = APIRouter(
    prefix="/governed", tags=["governed"], responses=ERRORS, route_class=StrictJsonRoute
)


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
    parse: ParseDep,
) -> WorkflowPublic:
    """Start a governed run (needs `start_governed`); its status, gate and audit are read and
    decided through /workflows/{id} like any run's."""
    require(caller, START_GOVERNED, doing="starting a governed run")
    inp = await parse.run(
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
    return await start_once(
        Started(client, settings, parse, caller, body, response),
        GovernedWorkflow.run,
        inp,
        workflow_id,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_PIPELINE, GOVERNED_PIPELINE),
                SearchAttributePair(SA_STATE, RunState.RUNNING.value),
            ]
        ),
        static_summary=clip_summary(f"governed: {body.request}"),
        static_details=f"policy `{inp.policy.name}`, requested by `{caller.principal}`",
    )
