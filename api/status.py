"""Reading a run's status with the `status` query, failures mapped to HTTP."""

from __future__ import annotations

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from api.errors import ApiError, from_rpc
from workflows.models import RunStatus
from workflows.pipeline import PipelineWorkflow


async def query_status(client: Client, workflow_id: str) -> RunStatus:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.query(PipelineWorkflow.status)
    except RPCError as err:
        raise from_rpc(err, not_found=f"no run {workflow_id!r}") from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        # Another workflow type under this id, or a run that cannot answer: not a Stepgate run.
        raise ApiError(
            409, "status_unavailable", f"run {workflow_id!r} cannot report status: {err}"
        ) from None
