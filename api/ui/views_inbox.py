"""The inbox page: the caller's open gates across runs, and batch decisions after a confirmation
page that lists exactly what will be decided."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from activities.access import PRINCIPAL_NAME_PATTERN
from api.errors import ApiError
from api.routes.approvals import INBOX_PAGE_MAX, PRIORITY_PATTERN, batch, inbox
from api.schemas.approvals import BatchCreate, BatchItem, InboxItem
from api.ui.web import SignedIn, SignedInDep, UiRoute, first, page, read_form, ui_state
from api.visibility import MAX_CURSOR_CHARS
from workflows.language.definition import PIPELINE_NAME_PATTERN, PRIORITIES
from workflows.language.limits import MAX_NAME_CHARS

router = APIRouter(route_class=UiRoute)

# Decisions one batch may carry (the API's own bound), and gates one inbox page shows.
MAX_PICKS = 100
SHOWN = 100
BATCH_ACTIONS = ("approve", "reject")


async def _inbox(
    request: Request,
    who: SignedIn,
    priority: str | None = None,
    cursor: str | None = None,
    pipeline: str | None = None,
    requester: str | None = None,
) -> tuple[list[InboxItem], str | None]:
    """The API's own inbox, as this principal."""
    state, _ = ui_state(request)
    got = await inbox(
        who.caller,
        state.temporal.client,
        request.app.state.offload,
        state.settings,
        page_size=INBOX_PAGE_MAX,
        cursor=cursor,
        priority=priority,
        pipeline=pipeline,
        requester=requester,
    )
    return got.items, got.next_cursor


@router.get("/ui/inbox", include_in_schema=False)
async def inbox_page(
    request: Request,
    who: SignedInDep,
    priority: Annotated[str | None, Query(max_length=40, pattern="^$|" + PRIORITY_PATTERN)] = None,
    pipeline: Annotated[
        str | None, Query(max_length=MAX_NAME_CHARS, pattern="^$|" + PIPELINE_NAME_PATTERN)
    ] = None,
    requester: Annotated[
        str | None, Query(max_length=MAX_NAME_CHARS, pattern="^$|" + PRINCIPAL_NAME_PATTERN)
    ] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
    skip: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """A hundred gates at a time: `skip` moves within the page of runs, `cursor` to older runs."""
    wanted, next_cursor = await _inbox(
        request, who, priority or None, cursor, pipeline or None, requester or None
    )
    app, _ = ui_state(request)
    return page(
        request,
        "inbox.html",
        who=who,
        items=wanted[skip : skip + SHOWN],
        total=len(wanted),
        skip=skip,
        shown=SHOWN,
        cursor=cursor or "",
        pipelines=sorted(app.catalog.current.names()),
        requesters=sorted({i.requester for i in wanted if i.requester} | {requester or ""} - {""}),
        priorities=PRIORITIES,
        chosen={
            "priority": priority or "",
            "pipeline": pipeline or "",
            "requester": requester or "",
        },
        next_cursor=next_cursor,
    )


def _picks(form: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """The chosen gates as (workflow id, gate, digest), in the order the page listed them;
    space-separated, as none of the three can hold a space."""
    picks = []
    for value in form.get("pick", [])[: MAX_PICKS + 1]:
        parts = value.split(" ")
        if len(parts) != 3 or not all(parts):
            raise ApiError(422, "invalid", "pick: not a gate this page listed")
        picks.append((parts[0], parts[1], parts[2]))
    if not picks:
        raise ApiError(422, "invalid", "pick: choose at least one gate")
    if len(picks) > MAX_PICKS:
        raise ApiError(422, "invalid", f"pick: at most {MAX_PICKS} gates at once")
    return picks


def _action(form: dict[str, list[str]]) -> str:
    action = first(form, "action")
    if action not in BATCH_ACTIONS:
        raise ApiError(422, "invalid", "action: approve or reject")
    return action


@router.post("/ui/inbox/batch", include_in_schema=False)
async def batch_confirm(request: Request, who: SignedInDep) -> Response:
    """The confirmation page: each chosen gate as it is now (gone ones marked), nothing sent."""
    form = await read_form(request, who)
    picks, action = _picks(form), _action(form)
    items, _ = await _inbox(request, who)
    open_now = {(i.workflow_id, i.gate): i for i in items}
    rows = [(p, open_now.get((p[0], p[1]))) for p in picks]
    return page(request, "batch_confirm.html", who=who, rows=rows, action=action)


@router.post("/ui/inbox/batch/apply", include_in_schema=False)
async def batch_apply(request: Request, who: SignedInDep) -> Response:
    form = await read_form(request, who)
    picks, action = _picks(form), _action(form)
    comment = (first(form, "comment") or "").strip() or None
    state, _ = ui_state(request)
    body = BatchCreate(
        items=[
            BatchItem(workflow_id=w, gate=g, digest=d, action=action, comment=comment)
            for w, g, d in picks
        ]
    )
    got = await batch(who.caller, state.temporal.client, state, body)
    return page(request, "batch_done.html", who=who, results=got.results, action=action)
