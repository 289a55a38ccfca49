"""The API acts only on Stepgate's own runs: workflows of its types in the configured namespace."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
    ListWorkflowExecutionsRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from api.errors import ApiError, from_rpc, timed_out, unavailable
from workflows.contract import STEPGATE_WORKFLOW_TYPES
from workflows.query_text import in_list

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


async def listed_runs(client: Client, workflow_ids: Collection[str]) -> dict[str, str]:
    """The running Stepgate runs among `workflow_ids` that visibility lists, by workflow id: run
    id. One list for a whole batch of decisions instead of a describe each (about a millisecond
    of server CPU apiece). Visibility trails the history (a run started a moment ago may not be
    listed yet, one just closed may still be), so a caller describes any id missing here, and
    sends to the listed run itself, describing after all if that run has closed meanwhile. The
    type comes from the server's record, as a describe's does; a failed list lists nothing."""
    if not workflow_ids:
        return {}
    query = " AND ".join(
        (
            f"WorkflowType IN {in_list(STEPGATE_WORKFLOW_TYPES)}",
            "ExecutionStatus = 'Running'",
            f"WorkflowId IN {in_list(workflow_ids)}",
        )
    )
    request = ListWorkflowExecutionsRequest(
        namespace=client.namespace, page_size=len(workflow_ids), query=query
    )
    try:
        page = await client.workflow_service.list_workflow_executions(
            request, retry=False, timeout=DESCRIBE_TIMEOUT
        )
    except RPCError:
        return {}
    wanted = set(workflow_ids)
    return {
        info.execution.workflow_id: info.execution.run_id
        for info in page.executions
        if info.execution.workflow_id in wanted and info.type.name in STEPGATE_WORKFLOW_TYPES
    }
