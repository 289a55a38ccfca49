"""The start page: the catalog, and a form generated from a pipeline's input schema that starts
a run through the API's own start (the same permissions, validation and idempotency)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api.errors import ApiError
from api.routes.workflows import start_workflow
from api.schemas.workflows import WorkflowCreate
from api.ui.forms import fields_of, parse_json, read_fields
from api.ui.web import SignedInDep, UiRoute, first, page, read_form, see_other, ui_state
from workflows.language.definition import PIPELINE_NAME_PATTERN, Definition
from workflows.language.limits import MAX_NAME_CHARS

router = APIRouter(route_class=UiRoute)
PipelinePath = Annotated[
    str, Path(min_length=1, max_length=MAX_NAME_CHARS, pattern=PIPELINE_NAME_PATTERN)
]


@router.get("/ui/start", include_in_schema=False)
async def catalog_page(request: Request, who: SignedInDep) -> Response:
    app, _ = ui_state(request)
    return page(request, "start.html", who=who, pipelines=app.catalog.current.latest())


def _definition(request: Request, name: str) -> Definition:
    app, _ = ui_state(request)
    try:
        return app.catalog.current.get(name)
    except KeyError as err:
        raise ApiError(404, "not_found", str(err.args[0])) from None


@router.get("/ui/start/{name}", include_in_schema=False)
async def start_form(request: Request, who: SignedInDep, name: PipelinePath) -> Response:
    definition = _definition(request, name)
    return page(
        request,
        "start_form.html",
        who=who,
        definition=definition,
        fields=fields_of(definition.input),
    )


@router.post("/ui/start/{name}", include_in_schema=False)
async def start(request: Request, who: SignedInDep, name: PipelinePath) -> Response:
    form = await read_form(request, who)
    definition = _definition(request, name)
    fields = fields_of(definition.input)
    if first(form, "mode") == "json" or fields is None:
        given = parse_json(first(form, "raw") or "{}", "input")
        if not isinstance(given, dict):
            raise ApiError(422, "invalid", "input: must be a JSON object")
    else:
        given = read_fields(fields, form, "input")
    app, _ = ui_state(request)
    body = WorkflowCreate(
        definition=name,
        input=given,
        workflow_id=f"{definition.name}-{uuid.uuid4().hex[:12]}",
        approval_mode="auto" if first(form, "approval_mode") == "auto" else "manual",
    )
    slot = app.parse.slot(who.caller.principal)
    try:
        started = await start_workflow(
            who.caller,
            body,
            Response(),
            app.temporal.client,
            app.catalog.current,
            app.registry,
            app.settings,
            slot,
        )
    finally:
        slot.release()
    return see_other(f"/ui/runs/{started.workflow_id}")
