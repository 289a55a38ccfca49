"""Runs: the list with filters, a run's page (timeline, progress, gates, audit, a governed run's
plan and tier), the part of it that live updates redraw, a for_each step's items a page at a
time, and the run's event stream for this page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from activities.access import READ
from api.auth import require
from api.pages import page as read_page
from api.routes.pages import NumberCursor, StepPath
from api.routes.workflows import list_workflows, status_stream
from api.schemas.common import WorkflowIdPath
from api.status import query_status
from api.ui.web import SignedIn, SignedInDep, UiRoute, page, ui_state
from api.visibility import MAX_CURSOR_CHARS
from workflows.children import child_id
from workflows.contract import RunState
from workflows.language.limits import MAX_NAME_CHARS
from workflows.models import RunStatus
from workflows.rules.pages import PageInput

router = APIRouter(route_class=UiRoute)
ITEMS_PAGE = 50


def _reader(who: SignedIn) -> None:
    require(who.caller, READ, doing="reading runs")


@router.get("/ui/runs", include_in_schema=False)
async def runs_page(
    request: Request,
    who: SignedInDep,
    state: Annotated[str | None, Query(pattern="^$|^(" + "|".join(RunState) + ")$")] = None,
    pipeline: Annotated[str | None, Query(max_length=MAX_NAME_CHARS)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response:
    _reader(who)
    app, _ = ui_state(request)
    got = await list_workflows(
        who.caller,
        app.temporal.client,
        state=RunState(state) if state else None,
        pipeline=pipeline or None,
        awaiting=None,
        page_size=50,
        cursor=cursor,
    )
    return page(
        request,
        "runs.html",
        who=who,
        runs=got.items,
        next_cursor=got.next_cursor,
        states=[s.value for s in RunState],
        chosen={"state": state or "", "pipeline": pipeline or ""},
        pipelines=sorted(app.catalog.current.names()),
    )


async def _status(request: Request, who: SignedIn, workflow_id: str) -> RunStatus:
    _reader(who)
    app, _ = ui_state(request)
    return await query_status(app.temporal.client, workflow_id)


def _children(status: RunStatus) -> dict[str, str]:
    """Each child pipeline step's run id (its first round)."""
    return {s.id: child_id(status.workflow_id, s.id, 0) for s in status.steps if s.pipeline}


@router.get("/ui/runs/{workflow_id}", include_in_schema=False)
async def run_page(request: Request, who: SignedInDep, workflow_id: WorkflowIdPath) -> Response:
    status = await _status(request, who, workflow_id)
    return page(request, "run.html", who=who, run=status, children=_children(status))


@router.get("/ui/runs/{workflow_id}/live", include_in_schema=False)
async def run_live(request: Request, who: SignedInDep, workflow_id: WorkflowIdPath) -> Response:
    """The part of the run page that live updates redraw."""
    status = await _status(request, who, workflow_id)
    return page(
        request,
        "fragment.html",
        who=who,
        inner="run_live.html",
        run=status,
        children=_children(status),
    )


@router.get("/ui/runs/{workflow_id}/steps/{step}/items", include_in_schema=False)
async def items_page(
    request: Request,
    who: SignedInDep,
    workflow_id: WorkflowIdPath,
    step: StepPath,
    cursor: NumberCursor = None,
) -> Response:
    _reader(who)
    app, _ = ui_state(request)
    inp = PageInput(of="items", step=step, after=cursor, limit=ITEMS_PAGE)
    got = await read_page(app.temporal.client, workflow_id, inp)
    return page(
        request,
        "items.html",
        who=who,
        workflow_id=workflow_id,
        step=step,
        items=got.items,
        total=got.total,
        next_cursor=got.next_cursor,
    )


@router.get("/ui/runs/{workflow_id}/events", include_in_schema=False)
async def run_events(
    request: Request,
    who: SignedInDep,
    workflow_id: WorkflowIdPath,
    last_event_id: Annotated[str, Header(pattern=r"^[0-9]{0,18}$")] = "",
) -> Response:
    """The run's live status for this page, as the API's stream: with the session's key,
    checked again before each event, so a key removed meanwhile ends the stream."""
    _reader(who)
    app, _ = ui_state(request)
    principal, token = who.caller.principal, who.session.token
    return await status_stream(
        app, app.temporal.client, workflow_id, principal, token, last_event_id
    )
