"""The API acts only on Stepgate's own runs: workflows of its types in the configured namespace."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from api.errors import ApiError, from_rpc, timed_out, unavailable
from workflows.contract import STEPGATE_WORKFLOW_TYPES

# A describe needs only the server, not a worker: a slow answer means Temporal is in trouble.
DESCRIBE_TIMEOUT = timedelta(seconds=5)


async def describe_run(client: Client, workflow_id: str) -> DescribeWorkflowExecutionResponse:
    """The server's description of the current run of `workflow_id` if it is one of Stepgate's
    workflow types; 404 otherwise. The raw response: the SDK's view of it would also decode the
    memo and search attributes, which no caller here reads (status reads send one per request)."""
    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
    )
    try:
        desc = await client.workflow_service.describe_workflow_execution(
            request, retry=True, timeout=DESCRIBE_TIMEOUT
        )
    except RPCError as err:
        if timed_out(err):
            raise unavailable(f"Temporal did not describe {workflow_id!r} in time") from None
        raise from_rpc(err, not_found=f"no run {workflow_id!r}") from None
    if desc.workflow_execution_info.type.name not in STEPGATE_WORKFLOW_TYPES:
        # The same answer as for an unknown id: the API does not reveal other workflows.
        raise ApiError(404, "not_found", f"no run {workflow_id!r}")
    return desc


async def stepgate_run(client: Client, workflow_id: str) -> WorkflowHandle[Any, Any]:
    """A handle on the current run of `workflow_id` if it is one of Stepgate's workflow types;
    404 otherwise, before anything is sent to it. Costs one describe; the handle is pinned to
    the run described, so a signal cannot land on another workflow that took the id since."""
    desc = await describe_run(client, workflow_id)
    run_id = desc.workflow_execution_info.execution.run_id
    return client.get_workflow_handle(workflow_id, run_id=run_id)
