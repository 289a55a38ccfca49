"""Reading a run's status with the `status` query, failures mapped to HTTP."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.common import RawValue
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, from_rpc, no_worker, timed_out
from workflows.contract import STATUS_QUERY
from workflows.models import RunStatus
from workflows.pipeline import PipelineWorkflow

# A status query waits for a worker to answer; a run whose workers are all down must not hold
# an API request (and its connection) open.
QUERY_TIMEOUT = timedelta(seconds=5)


async def query_status(client: Client, workflow_id: str) -> RunStatus:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.query(PipelineWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        raise _query_error(err, workflow_id) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise _not_a_run(workflow_id, err) from None


async def query_status_json(client: Client, workflow_id: str) -> bytes:
    """The status as the worker serialized it: the API neither parses nor re-encodes it, which
    is most of what a status request would otherwise cost here."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        raw = await handle.query(STATUS_QUERY, result_type=RawValue, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        raise _query_error(err, workflow_id) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise _not_a_run(workflow_id, err) from None
    if raw.payload.metadata.get("encoding") != b"json/plain":
        return (await query_status(client, workflow_id)).model_dump_json().encode()
    return bytes(raw.payload.data)


def _query_error(err: RPCError, workflow_id: str) -> ApiError:
    no_poller = err.status == RPCStatusCode.FAILED_PRECONDITION and "poller" in err.message
    if timed_out(err) or no_poller:
        return no_worker(workflow_id, QUERY_TIMEOUT)
    return from_rpc(err, not_found=f"no run {workflow_id!r}")


def _not_a_run(workflow_id: str, err: Exception) -> ApiError:
    # Another workflow type under this id, or a run that cannot answer: not a Stepgate run.
    return ApiError(409, "status_unavailable", f"run {workflow_id!r} cannot report status: {err}")
