"""A run's lists a page at a time (its steps, a step's items or iterations, its gates) through
the `page` query; what the rules refuse (no such list, or a cursor that names nothing in the run)
becomes a 404: no such page."""

from __future__ import annotations

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from api.errors import ApiError
from api.status import QUERY_TIMEOUT, query_error
from workflows.pipeline import PipelineWorkflow
from workflows.rules.pages import PageInput, RunPage


async def page(client: Client, workflow_id: str, inp: PageInput) -> RunPage:
    handle = client.get_workflow_handle(workflow_id)
    try:
        got = await handle.query(PipelineWorkflow.page, inp, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        raise query_error(err, workflow_id) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise ApiError(
            409, "status_unavailable", f"run {workflow_id!r} cannot page its {inp.of}: {err}"
        ) from None
    message = got.message or "no such list"
    if got.problem is not None:
        # A list that does not exist, or a cursor (well formed: the route's pattern refused any
        # other with 422) that names no entry of it: no such page, as for the runs' listing.
        raise ApiError(404, "not_found", message)
    return got
