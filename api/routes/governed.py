"""Governed runs: Plan → Review by risk tier → Execute → Remember (a GovernedWorkflow each)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.access import START_GOVERNED
from api.auth import require
from api.deps import CallerDep, ClientDep, RegistryDep, SettingsDep
from api.governed import build_governed
from api.guards import OffloadDep
from api.routes.workflows import MEMO_REQUEST_HASH, links, same_request
from api.runs import request_hash
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
    digest = await offload.run(
        request_hash, {"principal": caller.principal, "body": body.model_dump(mode="json")}
    )
    text = f"governed: {body.request}"
    try:
        handle = await client.start_workflow(
            GovernedWorkflow.run,
            inp,
            id=workflow_id,
            task_queue=settings.stepgate_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_PIPELINE, "governed"),
                    SearchAttributePair(SA_STATE, RunState.RUNNING.value),
                ]
            ),
            static_summary=text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…",
            static_details=f"policy `{inp.policy.name}`, requested by `{caller.principal}`",
            memo={MEMO_REQUEST_HASH: digest},
        )
    except WorkflowAlreadyStartedError:
        run_id = await same_request(client, workflow_id, digest)
        response.status_code = status.HTTP_200_OK
        return WorkflowPublic(
            workflow_id=workflow_id, run_id=run_id, links=links(settings, workflow_id, run_id)
        )
    run_id = handle.first_execution_run_id or handle.result_run_id or ""
    return WorkflowPublic(
        workflow_id=workflow_id, run_id=run_id, links=links(settings, workflow_id, run_id)
    )
