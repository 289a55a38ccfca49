"""The caller's approval inbox across runs, and many decisions in one request."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from temporalio.client import Client

from api.auth import Caller
from api.decisions import submit
from api.deps import CallerDep, ClientDep, StateDep
from api.errors import ApiError
from api.schemas.approvals import (
    BatchCreate,
    BatchItem,
    BatchPublic,
    BatchResult,
    Inbox,
    InboxItem,
)
from api.schemas.common import ERRORS
from api.state import ApiState
from api.status import query_status
from api.visibility import MAX_CURSOR_CHARS, read_page, runs_query
from workflows.contract import MEMO_GATES, SA_PIPELINE
from workflows.models import GateSummary

router = APIRouter(prefix="/approvals", tags=["approvals"], responses=ERRORS)

# Bounds on one inbox request: runs read per page, and fallback status queries in flight.
INBOX_PAGE_MAX = 500
QUERY_CONCURRENCY = 8
BATCH_CONCURRENCY = 16
# All one batch may take; items still waiting for their run's lane then report 503 run_busy.
BATCH_TIMEOUT = timedelta(seconds=30)


def may_decide(gate: GateSummary, caller: Caller) -> bool:
    """The caller is among the approvers and has not voted yet (a second vote is refused)."""
    return bool(set(caller.principals) & set(gate.approvers)) and caller.principal not in gate.voted


def _item(workflow_id: str, pipeline: str, g: GateSummary) -> InboxItem:
    return InboxItem(
        workflow_id=workflow_id,
        pipeline=pipeline,
        gate=g.gate,
        stage=g.stage,
        review=g.review,
        subject=g.subject,
        subject_truncated=g.subject_truncated,
        digest=g.digest,
        opened_at=g.opened_at,
        deadline=g.deadline,
        actions=g.actions,
    )


async def gates_from_status(
    client: Client, workflow_id: str
) -> tuple[str, list[GateSummary]] | None:
    """Open gates of a run that keeps no gates memo (started before runs published one)."""
    try:
        status = await query_status(client, workflow_id)
    except ApiError as err:
        if err.status == 503:
            raise
        return None  # closed or gone since the visibility read: nothing to decide
    gates = [
        GateSummary(
            **g.model_dump(exclude={"approvals", "rejections"}),
            voted=[v.actor for v in (*g.approvals, *g.rejections)],
        )
        for g in status.open_gates
    ]
    return status.pipeline, gates


@router.get("", response_model=Inbox)
async def inbox(
    caller: CallerDep,
    client: ClientDep,
    page_size: Annotated[
        int, Query(ge=1, le=INBOX_PAGE_MAX, description="runs read for this page")
    ] = 200,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Inbox:
    """Open gates the caller may decide: one visibility read per page of runs (newest runs
    first, as visibility lists them), the gates coming from each run's memo; within a page the
    oldest gate comes first."""
    query = runs_query(awaiting=caller.principals, running_only=True)
    executions, next_cursor = await read_page(client, query, page_size, cursor)
    found: list[tuple[str, str, list[GateSummary]]] = []
    older: list[str] = []
    for e in executions:
        gates = await e.memo_value(MEMO_GATES, None, type_hint=list[GateSummary])
        if gates is None:
            older.append(e.id)
        else:
            found.append((e.id, e.typed_search_attributes.get(SA_PIPELINE) or "", gates))
    limit = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def fallback(workflow_id: str) -> tuple[str, str, list[GateSummary]] | None:
        async with limit:
            got = await gates_from_status(client, workflow_id)
        return (workflow_id, *got) if got else None

    found += [f for f in await asyncio.gather(*(fallback(i) for i in older)) if f]
    items = [
        _item(wid, pipeline, g)
        for wid, pipeline, gates in found
        for g in gates
        if may_decide(g, caller)
    ]
    return Inbox(
        items=sorted(items, key=lambda i: i.opened_at),
        next_cursor=next_cursor,
    )


@router.post("/batch", response_model=BatchPublic)
async def batch(
    caller: CallerDep, client: ClientDep, state: StateDep, body: BatchCreate
) -> BatchPublic:
    """Apply each decision on its own; one failure does not stop the others. Items for the same
    run are applied in the order given, different runs concurrently, each through its run's lane
    like a single decision. An item that could not be applied in time reports its own 503; only
    when every item did is the whole answer a 503 with Retry-After (nothing was applied)."""
    by_run: dict[str, list[int]] = {}
    for i, item in enumerate(body.items):
        by_run.setdefault(item.workflow_id, []).append(i)
    results: list[BatchResult | None] = [None] * len(body.items)
    unavailable: list[ApiError] = []
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)
    deadline = asyncio.get_running_loop().time() + BATCH_TIMEOUT.total_seconds()

    async def run_items(indexes: list[int]) -> None:
        async with limit:
            for i in indexes:
                item = body.items[i]
                try:
                    results[i] = await _apply_one(client, state, caller, item, deadline)
                except ApiError as err:
                    unavailable.append(err)
                    results[i] = _failed(item, err)

    await asyncio.gather(*(run_items(ix) for ix in by_run.values()))
    if len(unavailable) == len(body.items):
        raise unavailable[0]
    return BatchPublic(results=[r for r in results if r is not None])


async def _apply_one(
    client: Client, state: ApiState, caller: Caller, item: BatchItem, deadline: float
) -> BatchResult:
    """The item's result; a 503 (not applied in time, Temporal away) is raised to the batch."""
    try:
        view = await submit(
            client, state.lanes, item.workflow_id, item.gate, item, caller, deadline=deadline
        )
    except ApiError as err:
        if err.status == 503:
            raise
        return _failed(item, err)
    return BatchResult(
        workflow_id=item.workflow_id,
        gate=item.gate,
        ok=True,
        status_code=200,
        gate_state=view.state,
    )


def _failed(item: BatchItem, err: ApiError) -> BatchResult:
    return BatchResult(
        workflow_id=item.workflow_id,
        gate=item.gate,
        ok=False,
        status_code=err.status,
        error={"code": err.code, "message": err.message},
    )
