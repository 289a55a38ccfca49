"""Standing grants made at agent call gates: ending one before it runs out."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Path
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from activities.access import GRANTS_REVOKE
from api.decisions import DECISION_TIMEOUT, refusal, rpc_failure
from api.deps import CallerDep, ClientDep
from api.errors import ApiError, no_worker
from api.schemas.common import ERRORS, WorkflowIdPath
from api.schemas.workflows import RevokeCreate
from api.scope import stepgate_run
from workflows.agent_models import GrantView, RevokeGrant
from workflows.pipeline import PipelineWorkflow

router = APIRouter(prefix="/workflows", tags=["workflows"], responses=ERRORS)

GrantPath = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^g[0-9]{1,12}$")]


@router.delete("/{workflow_id}/grants/{grant}", response_model=GrantView)
async def revoke_grant(
    caller: CallerDep,
    client: ClientDep,
    workflow_id: WorkflowIdPath,
    grant: GrantPath,
    body: Annotated[RevokeCreate | None, Body()] = None,
) -> GrantView:
    """End a standing grant: one who gave it may, and a key with `grants_revoke`; the run's
    audit records who and why. 403 anyone else, 404 an unknown grant, 409 one already ended."""
    handle = await stepgate_run(client, workflow_id)
    req = RevokeGrant(
        grant=grant,
        actor=caller.principal,
        admin=caller.can(GRANTS_REVOKE),
        reason=body.reason if body else None,
    )
    try:
        async with asyncio.timeout(DECISION_TIMEOUT.total_seconds()):
            return await handle.execute_update(
                PipelineWorkflow.revoke_grant, req, rpc_timeout=DECISION_TIMEOUT
            )
    except WorkflowUpdateFailedError as err:
        found = refusal(err.cause)
        if found.code == "decision_failed":  # not a run that keeps grants (a governed run)
            raise ApiError(404, "unknown_grant", f"run {workflow_id!r} has no grants") from None
        raise found from None
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
        raise no_worker(workflow_id, DECISION_TIMEOUT) from None
    except RPCError as err:
        raise rpc_failure(err, workflow_id) from None
