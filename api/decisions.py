"""Applying a decision through the validated `submit_decision` update, refusals mapped to HTTP.

Under a storm of decisions on one run, Temporal refuses updates above its per-run in-flight
limit (RESOURCE_EXHAUSTED) and may abort updates in flight (UNAVAILABLE "update was aborted").
Neither may cost a valid vote: each decision waits for a turn in its run's lane (RunLanes) and
is retried under one update id until its deadline; only then does the caller get a 503 with
Retry-After."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.config import Settings
from api.auth import Caller
from api.delegation import delegations_to
from api.errors import ApiError, from_rpc, no_worker, unavailable
from api.limits import RunLanes, run_busy
from api.schemas.workflows import DecisionCreate
from api.scope import stepgate_run
from workflows.models import Channel, Decision, GateView
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
    "bad_grant": 422,
    "bad_response": 422,
    "unknown_grant": 404,
    "grant_not_active": 409,
}

# All one decision may take: its turn in the run's lane, every attempt and the wait for a worker
# to apply it. Bounded so a run whose workers are down, or that is swamped, answers 503 instead
# of holding the request open.
DECISION_TIMEOUT = timedelta(seconds=10)
# Temporal's answers that mean "not now" rather than "no": the update was never admitted, or it
# was aborted and may be sent again.
_OVERLOADED = (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.ABORTED)
# Backoff between attempts, with full jitter so that retries from several API replicas spread.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0


async def submit(
    client: Client,
    lanes: RunLanes,
    workflow_id: str,
    gate: str,
    body: DecisionCreate,
    caller: Caller,
    *,
    channel: Channel,
    settings: Settings,
    deadline: float | None = None,
    listed: str | None = None,
) -> GateView:
    """Apply `body` as the caller's decision, sent through `channel`, carrying the delegations
    the address book gives the caller now (the rules decide whether one applies at this gate);
    `deadline` (a loop.time() value) may shorten the usual DECISION_TIMEOUT, as a batch does for
    its later items. `listed`: the run id visibility gave as a running Stepgate run of this id
    (scope.listed_runs), which spares the describe."""
    # Actor and roles come from the key, whatever the body says: the API vouches for them.
    decision = Decision(
        gate=gate,
        action=body.action,
        actor=caller.principal,
        roles=list(caller.roles),
        comment=body.comment,
        patch=body.patch,
        digest=body.digest,
        grant=body.grant,
        response=body.response,
        delegations=await delegations_to(settings, caller.principal, datetime.now(UTC)),
        channel=channel,
    )
    # Only Stepgate's runs take decisions (one describe, unless visibility listed the run); the
    # update then goes to the workflow id, not the run described, so a run that continued as new
    # meanwhile still gets it.
    if listed is None:
        await stepgate_run(client, workflow_id)
    loop = asyncio.get_running_loop()
    own = loop.time() + DECISION_TIMEOUT.total_seconds()
    deadline = own if deadline is None else min(deadline, own)
    async with lanes.turn(workflow_id, deadline) as queued:
        if listed is not None:
            # To the listed run only: whatever holds the id now may not be one of Stepgate's.
            try:
                return await _attempts(
                    client, workflow_id, decision, deadline, busy=queued, run_id=listed
                )
            except _RunClosed:  # closed or continued as new since it was listed
                await stepgate_run(client, workflow_id)
        return await _attempts(client, workflow_id, decision, deadline, busy=queued)


class _RunClosed(Exception):
    """The run an update was pinned to has closed: nothing was sent to any other."""


async def _attempts(
    client: Client,
    workflow_id: str,
    decision: Decision,
    deadline: float,
    *,
    busy: bool,
    run_id: str | None = None,
) -> GateView:
    """Send the update until it is answered; `busy`: the run is known to be swamped, so running
    out of time is its load (run_busy), not its workers being away (worker_unavailable)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    # One id for every attempt: Temporal answers an update id it has already applied with that
    # update's outcome, so a retry never counts a vote twice nor refuses it as already cast.
    update_id = f"decision-{uuid.uuid4()}"
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        try:
            async with asyncio.timeout(remaining):
                return await handle.execute_update(
                    PipelineWorkflow.submit_decision,
                    decision,
                    id=update_id,
                    rpc_timeout=timedelta(seconds=max(remaining, 0.001)),
                )
        except WorkflowUpdateFailedError as err:
            raise refusal(err.cause) from None
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
            # The SDK reports its own deadline, and our cancelling it, as this error.
            if busy:
                raise run_busy(workflow_id, RETRY_MAX_S) from None
            raise no_worker(workflow_id, DECISION_TIMEOUT) from None
        except RPCError as err:
            if run_id is not None and err.status == RPCStatusCode.NOT_FOUND:
                raise _RunClosed from None
            if err.status not in _OVERLOADED:
                raise rpc_failure(err, workflow_id) from None
            busy = True
            pause = random.uniform(0, min(RETRY_MAX_S, RETRY_FIRST_S * 2**attempt))
            attempt += 1
            if loop.time() + pause >= deadline:
                raise _gave_up(err, workflow_id) from None
            await asyncio.sleep(pause)


def rpc_failure(err: RPCError, workflow_id: str) -> ApiError:
    """The HTTP answer to an RPC failure that retrying now would not fix."""
    mapped = from_rpc(err, not_found=f"no run {workflow_id!r}")
    if mapped.status == 502:
        # Whatever Temporal failed with, the caller can only send the decision again later: say
        # so with a 503 and Retry-After rather than a 502 it cannot act on.
        return unavailable(mapped.message, "temporal_error")
    return mapped


def _gave_up(err: RPCError, workflow_id: str) -> ApiError:
    """503 either way; the code says whether the run was swamped or Temporal could not be reached."""
    if err.status == RPCStatusCode.UNAVAILABLE and "aborted" not in err.message:
        return from_rpc(err)
    return run_busy(workflow_id, RETRY_MAX_S)


def refusal(cause: BaseException) -> ApiError:
    if isinstance(cause, ApplicationError) and cause.type in REFUSAL_STATUS:
        return ApiError(REFUSAL_STATUS[cause.type], cause.type, cause.message)
    return ApiError(409, "decision_failed", str(cause))
