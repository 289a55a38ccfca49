"""Runs: start, list, status, audit, live events, gate decisions and lifecycle signals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.access import READ
from api import audit, events
from api.auth import Caller, KeyWatch
from api.decisions import submit
from api.deps import (
    BearerDep,
    CallerDep,
    CatalogDep,
    ClientDep,
    LifecycleDep,
    ParseDep,
    ReaderDep,
    RegistryDep,
    SettingsDep,
    StateDep,
)
from api.errors import from_rpc
from api.guards import StrictJsonRoute
from api.limits import StreamLease
from api.runs import build_input, details, start_attributes, summary
from api.schemas.common import ERRORS, Accepted, ChannelHeader, GateIdPath, WorkflowIdPath
from api.schemas.workflows import (
    AuditPublic,
    DecisionCreate,
    LifecycleCreate,
    WorkflowCreate,
    WorkflowList,
    WorkflowPublic,
)
from api.scope import stepgate_run
from api.starts import Started, start_once
from api.state import ApiState
from api.visibility import MAX_CURSOR_CHARS, read_page, runs_query, summarize
from api.watchdog import CancelWatch
from workflows.contract import RunState
from workflows.language.limits import MAX_NAME_CHARS
from workflows.models import GateView, LifecycleInput, RunStatus
from workflows.pipeline import PipelineWorkflow

router = APIRouter(
    prefix="/workflows", tags=["workflows"], responses=ERRORS, route_class=StrictJsonRoute
)

_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a `status` event (data: RunStatus, id: its revision) first, then a "
        "`patch` event (data: a JSON Patch, RFC 6902, from the status the stream sent last) per "
        "change, until the run closes; an `error` event (data: the error shape) when the run "
        "cannot be read any more or the stream's key no longer holds",
        "content": {
            # Each event as the stream carries it (OpenAPI 3.2's way of describing SSE): `data`
            # is JSON, a RunStatus for `status` events, operations for `patch` events, the error
            # shape for an `error` event.
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string", "enum": ["status", "patch", "error"]},
                        "id": {"type": "string"},
                        "retry": {"type": "integer"},
                        "data": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "contentSchema": {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/RunStatus"},
                                    {"type": "array", "items": {"type": "object"}},
                                    {"$ref": "#/components/schemas/ErrorPublic"},
                                ]
                            },
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    response_model=WorkflowPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": WorkflowPublic, "description": "the same request was already started"}
    },
)
async def start_workflow(
    caller: CallerDep,
    body: WorkflowCreate,
    response: Response,
    client: ClientDep,
    catalog: CatalogDep,
    registry: RegistryDep,
    settings: SettingsDep,
    parse: ParseDep,
) -> WorkflowPublic:
    """Validate and start a run; repeating a request with the same workflow_id is safe. Needs
    `start`; an inline definition also `start_inline`, `approval_mode: auto` also `start_auto`."""
    inp = await parse.run(
        build_input,
        body.definition,
        body.input,
        body.approval_mode,
        caller,
        catalog,
        registry,
        settings,
    )
    workflow_id = body.workflow_id or f"{inp.definition.name}-{uuid.uuid4().hex[:12]}"
    return await start_once(
        Started(client, settings, parse, caller, body, response),
        PipelineWorkflow.run,
        inp,
        workflow_id,
        search_attributes=start_attributes(inp),
        static_summary=summary(inp, workflow_id),
        static_details=details(inp),
    )


@router.get("", response_model=WorkflowList)
async def list_workflows(
    caller: ReaderDep,
    client: ClientDep,
    state: RunState | None = None,
    pipeline: Annotated[str | None, Query(max_length=MAX_NAME_CHARS)] = None,
    awaiting: Annotated[
        Literal["me"] | None, Query(description="runs the caller may decide")
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> WorkflowList:
    """Runs from Temporal visibility, newest first, one page at a time."""
    query = runs_query(
        state=state.value if state else None,
        pipeline=pipeline,
        awaiting=caller.principals if awaiting == "me" else None,
    )
    executions, next_cursor = await read_page(client, query, page_size, cursor)
    return WorkflowList(items=[summarize(e) for e in executions], next_cursor=next_cursor)


@router.get("/{workflow_id}", response_model=RunStatus)
async def get_workflow(
    _: ReaderDep, client: ClientDep, state: StateDep, workflow_id: WorkflowIdPath
) -> Response:
    """The run's full status from a `status` query sent after the request arrived (concurrent
    readers of one run share it), its JSON passed through as the worker wrote it."""
    body = await state.reads.json(client, workflow_id)
    return Response(body, media_type="application/json")


@router.get("/{workflow_id}/audit", response_model=AuditPublic)
async def get_audit(
    _: ReaderDep,
    client: ClientDep,
    state: StateDep,
    workflow_id: WorkflowIdPath,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,12}$", description="next_cursor of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPublic:
    """Every decision, refusal, timeout and lifecycle change, oldest first, a page at a time
    (older entries come from the hash-chained chunks the run moved to the artifact store)."""
    got = await audit.page(client, state.artifacts, workflow_id, int(cursor or 0), limit)
    return AuditPublic(
        entries=got.entries,
        total=got.total,
        next_cursor=str(got.next_after) if got.next_after is not None else None,
    )


@router.get("/{workflow_id}/events", response_class=StreamingResponse, responses=_SSE_DOC)
async def watch_workflow(
    caller: ReaderDep,
    credentials: BearerDep,
    client: ClientDep,
    state: StateDep,
    workflow_id: WorkflowIdPath,
    last_event_id: Annotated[
        str,
        Header(pattern=r"^[0-9]{0,18}$", description="resume after this revision (its `id`)"),
    ] = "",
) -> StreamingResponse:
    """Live status as Server-Sent Events: the status whole, then a JSON Patch per change, closed
    when the run closes or the key is removed or expires. Each key's principal may hold a bounded
    number of streams open (429 beyond it), which share a budget of bytes a second."""
    token = credentials.credentials if credentials else ""
    return await status_stream(state, client, workflow_id, caller.principal, token, last_event_id)


async def status_stream(
    state: ApiState,
    client: Client,
    workflow_id: str,
    principal: str,
    token: str,
    last_event_id: str,
) -> StreamingResponse:
    """A run's live status as Server-Sent Events for `principal` (whose key is `token`, checked
    again before each event): the API's /events and the web app's stream alike."""
    lease = state.limits.open_stream(principal)
    try:
        # The first query happens before streaming so an unknown run is a plain 404.
        first = await events.snapshot(client, workflow_id)
    except BaseException:
        lease.release()
        raise
    chunks = events.stream(
        state.hub,
        client,
        first,
        last_revision(last_event_id),
        budget=state.limits.stream_bytes(principal),
        key=KeyWatch(state.keys, token, principal, READ),
    )
    return StreamingResponse(
        leased(chunks, lease),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Also released here in case the stream is dropped before it ever ran.
        background=BackgroundTask(lease.release),
    )


def last_revision(last_event_id: str) -> int | None:
    """The revision a reconnecting stream saw last (empty: none)."""
    return int(last_event_id) if last_event_id else None


async def leased(chunks: AsyncIterator[str], lease: StreamLease) -> AsyncIterator[str]:
    """The stream's chunks; its slot is given back the moment it ends or the client leaves."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        lease.release()


@router.post("/{workflow_id}/gates/{gate}", response_model=GateView)
async def decide_gate(
    caller: CallerDep,
    client: ClientDep,
    state: StateDep,
    workflow_id: WorkflowIdPath,
    gate: GateIdPath,
    body: DecisionCreate,
    via: ChannelHeader = "api",
) -> GateView:
    """Decide an open gate as the caller; the workflow checks who may approve. A run swamped
    with decisions answers 503 run_busy with Retry-After once this one has waited its bound."""
    return await submit(
        client, state.lanes, workflow_id, gate, body, caller, channel=via, settings=state.settings
    )


LifecycleBody = Annotated[LifecycleCreate | None, Body()]


async def _lifecycle(
    client: Client,
    workflow_id: str,
    action: str,
    caller: Caller,
    body: LifecycleCreate | None,
    cancels: CancelWatch | None = None,
) -> Accepted:
    handle = await stepgate_run(client, workflow_id)
    by = LifecycleInput(actor=caller.principal, reason=body.reason if body else None)
    try:
        if action == "cancel":
            # The signal goes first, so the run's audit names who cancelled and why before the
            # cancellation itself reaches it.
            await handle.signal(PipelineWorkflow.cancel, by)
        elif action == "pause":
            await handle.signal(PipelineWorkflow.pause, by)
        else:
            await handle.signal(PipelineWorkflow.resume, by)
    except RPCError as err:
        raise from_rpc(err, not_found=f"no run {workflow_id!r}") from None
    if action == "cancel":
        try:
            await handle.cancel(reason=by.reason or "")
        except RPCError as err:
            # The signal was accepted, so the run is cancelling on its own: it may have closed
            # before the cancel request arrived, which Temporal reports as not found.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise from_rpc(err) from None
        if cancels is not None:  # a run stuck in its workflow task ends anyway (api/watchdog.py)
            cancels.watch(client, workflow_id, caller.principal)
    return Accepted(workflow_id=workflow_id, action=action)


@router.post("/{workflow_id}/cancel", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED)
async def cancel_workflow(
    caller: LifecycleDep,
    client: ClientDep,
    state: StateDep,
    workflow_id: WorkflowIdPath,
    body: LifecycleBody = None,
) -> Accepted:
    """Cancel the run as the caller, with an optional `reason`: the audit records both, then
    running steps stop and compensations run. A run that cannot act on it (its workflow task
    keeps failing, or no worker takes it) is terminated after a short grace."""
    return await _lifecycle(client, workflow_id, "cancel", caller, body, state.cancels)


@router.post("/{workflow_id}/pause", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED)
async def pause_workflow(
    caller: LifecycleDep, client: ClientDep, workflow_id: WorkflowIdPath, body: LifecycleBody = None
) -> Accepted:
    """Start no new steps until resumed; running steps finish. Takes an optional `reason`."""
    return await _lifecycle(client, workflow_id, "pause", caller, body)


@router.post("/{workflow_id}/resume", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED)
async def resume_workflow(
    caller: LifecycleDep, client: ClientDep, workflow_id: WorkflowIdPath, body: LifecycleBody = None
) -> Accepted:
    """Continue a paused run. Takes an optional `reason`."""
    return await _lifecycle(client, workflow_id, "resume", caller, body)
