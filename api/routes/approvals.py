"""The caller's approval inbox across runs, and many decisions in one request."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from temporalio.client import Client
from temporalio.service import RPCError

from api.auth import Caller
from api.decisions import submit
from api.deps import CallerDep, ClientDep
from api.errors import ApiError, from_rpc
from api.schemas.approvals import BatchCreate, BatchPublic, BatchResult, Inbox, InboxItem
from api.schemas.common import ERRORS
from api.status import query_status
from api.visibility import runs_query
from workflows.models import GateView, RunStatus

router = APIRouter(prefix="/approvals", tags=["approvals"], responses=ERRORS)

# Bounds on one inbox request: visibility rows read, and status queries in flight at once.
INBOX_LIMIT = 200
QUERY_CONCURRENCY = 8


def may_decide(gate: GateView, caller: Caller) -> bool:
    """The caller is among the approvers and has not voted yet (a second vote is refused)."""
    voted = {v.actor for v in (*gate.approvals, *gate.rejections)}
    return bool(set(caller.principals) & set(gate.approvers)) and caller.principal not in voted


async def _runs_awaiting(client: Client, caller: Caller) -> list[str]:
    query = runs_query(awaiting=caller.principals, running_only=True)
    try:
        return [
            e.id
            async for e in client.list_workflows(query, limit=INBOX_LIMIT, page_size=INBOX_LIMIT)
        ]
    except RPCError as err:
        raise from_rpc(err) from None


@router.get("", response_model=Inbox)
async def inbox(caller: CallerDep, client: ClientDep) -> Inbox:
    """Open gates the caller may decide, oldest first."""
    ids = await _runs_awaiting(client, caller)
    limit = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def one(workflow_id: str) -> RunStatus | None:
        async with limit:
            try:
                return await query_status(client, workflow_id)
            except ApiError as err:
                if err.status == 503:
                    raise
                return None  # closed or gone since the visibility read: nothing to decide

    statuses = await asyncio.gather(*(one(i) for i in ids))
    items = [
        InboxItem(
            workflow_id=s.workflow_id,
            pipeline=s.pipeline,
            gate=g.gate,
            stage=g.stage,
            review=g.review,
            subject=g.subject,
            digest=g.digest,
            opened_at=g.opened_at,
            deadline=g.deadline,
            actions=g.actions,
        )
        for s in statuses
        if s is not None
        for g in s.open_gates
        if may_decide(g, caller)
    ]
    return Inbox(items=sorted(items, key=lambda i: i.opened_at))


@router.post("/batch", response_model=BatchPublic)
async def batch(caller: CallerDep, client: ClientDep, body: BatchCreate) -> BatchPublic:
    """Apply each decision on its own, in order; one failure does not stop the others."""
    results = []
    for item in body.items:
        try:
            view = await submit(client, item.workflow_id, item.gate, item, caller)
        except ApiError as err:
            results.append(
                BatchResult(
                    workflow_id=item.workflow_id,
                    gate=item.gate,
                    ok=False,
                    status_code=err.status,
                    error={"code": err.code, "message": err.message},
                )
            )
            continue
        results.append(
            BatchResult(
                workflow_id=item.workflow_id,
                gate=item.gate,
                ok=True,
                status_code=200,
                gate_state=view.state,
            )
        )
    return BatchPublic(results=results)
