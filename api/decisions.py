"""Applying a decision through the validated `submit_decision` update, refusals mapped to HTTP."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.auth import Caller
from api.errors import ApiError, from_rpc, no_worker, timed_out
from api.schemas.workflows import DecisionCreate
from api.scope import stepgate_run
from workflows.models import Decision, GateView
from workflows.pipeline import PipelineWorkflow

# Refusal types raised by PipelineWorkflow's update validator, and what they mean over HTTP.
REFUSAL_STATUS = {
    "not_authorized": 403,
    "self_approval": 403,
    "separation_of_duties": 403,
    "unknown_gate": 404,
    "gate_not_open": 409,
    "already_voted": 409,
    "digest_mismatch": 409,
    "action_not_allowed": 422,
    "bad_patch": 422,
}

# An update waits for a worker to validate and apply it; bounded so a run whose workers are all
# down answers 503 instead of holding the request open.
DECISION_TIMEOUT = timedelta(seconds=10)


async def submit(
    client: Client, workflow_id: str, gate: str, body: DecisionCreate, caller: Caller
) -> GateView:
    # Actor and roles come from the key, whatever the body says: the API vouches for them.
    decision = Decision(
        gate=gate,
        action=body.action,
        actor=caller.principal,
        roles=list(caller.roles),
        comment=body.comment,
        patch=body.patch,
        digest=body.digest,
    )
    handle = await stepgate_run(client, workflow_id)
    try:
        return await handle.execute_update(
            PipelineWorkflow.submit_decision, decision, rpc_timeout=DECISION_TIMEOUT
        )
    except WorkflowUpdateFailedError as err:
        raise refusal(err.cause) from None
    except RPCError as err:
        if timed_out(err):
            raise no_worker(workflow_id, DECISION_TIMEOUT) from None
        raise from_rpc(err, not_found=f"no run {workflow_id!r}") from None


def refusal(cause: BaseException) -> ApiError:
    if isinstance(cause, ApplicationError) and cause.type in REFUSAL_STATUS:
        return ApiError(REFUSAL_STATUS[cause.type], cause.type, cause.message)
    return ApiError(409, "decision_failed", str(cause))
