"""Starting a run once per request: the same request again (same caller, same body) finds the
run it started, even once closed; another request under that workflow id is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import Response, status
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from activities.config import Settings
from activities.documents import digest_of
from api.auth import Caller
from api.errors import ApiError, from_rpc
from api.guards import Runs
from api.schemas.workflows import WorkflowLinks, WorkflowPublic

# Memo key of the digest of the request that started a run.
MEMO_REQUEST_HASH = "stepgate_request_sha256"


def request_hash(body: dict[str, Any]) -> str:
    """The digest of a request body's canonical JSON: equal bodies, equal hashes."""
    return digest_of(body)


def links(settings: Settings, workflow_id: str, run_id: str) -> WorkflowLinks:
    base = f"{settings.stepgate_public_url.rstrip('/')}/workflows/{quote(workflow_id, safe='')}"
    ui = settings.stepgate_ui_url.rstrip("/")
    ns = quote(settings.temporal_namespace, safe="")
    return WorkflowLinks(
        self=base,
        events=f"{base}/events",
        web_ui=f"{ui}/namespaces/{ns}/workflows/{quote(workflow_id, safe='')}/{run_id}/history",
    )


@dataclass(frozen=True)
class Started:
    """What starting a run from a request needs besides the workflow and its input."""

    client: Client
    settings: Settings
    # Where the request's body is digested: the request's parse slot.
    cpu: Runs
    caller: Caller
    body: BaseModel
    response: Response


async def start_once(
    req: Started, run: Any, inp: Any, workflow_id: str, **options: Any
) -> WorkflowPublic:
    """Start `run` under `workflow_id` once: the same request again (same caller, same body)
    answers 200 with the run it started, even once closed; another request under that id 409."""
    # The same body from someone else is a different request: it must not adopt this run.
    digest = await req.cpu.run(
        request_hash, {"principal": req.caller.principal, "body": req.body.model_dump(mode="json")}
    )
    settings = req.settings
    try:
        handle = await req.client.start_workflow(
            run,
            inp,
            id=workflow_id,
            task_queue=settings.stepgate_task_queue,
            # One id, one run: a retried request must find the run it started, even once closed.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={MEMO_REQUEST_HASH: digest},
            **options,
        )
    except WorkflowAlreadyStartedError:
        run_id = await same_request(req.client, workflow_id, digest)
        req.response.status_code = status.HTTP_200_OK
    else:
        run_id = handle.first_execution_run_id or handle.result_run_id or ""
    return WorkflowPublic(
        workflow_id=workflow_id, run_id=run_id, links=links(settings, workflow_id, run_id)
    )


async def same_request(client: Client, workflow_id: str, digest: str) -> str:
    """The existing run's id when it was started by an identical request; 409 otherwise."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
        memo = await desc.memo()
    except RPCError as err:
        raise from_rpc(err) from None
    if memo.get(MEMO_REQUEST_HASH) != digest:
        raise ApiError(
            409, "workflow_exists", f"workflow id {workflow_id!r} is taken by a different request"
        )
    return desc.run_id
