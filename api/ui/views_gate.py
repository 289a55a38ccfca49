"""A gate's panel: what is under review, its digest, votes, quorum and time left, and a form
with only the actions this caller may take; modify through a form generated from the tool's
input schema (or raw JSON), shown as a difference before it is sent. Every decision carries
the digest of what the page showed: one on a subject that changed meanwhile is refused with a
page that shows the new subject."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from activities.access import READ
from activities.registry import ToolError, ToolRegistry
from api.decisions import submit
from api.delegation import acting_for, delegations_to
from api.errors import ApiError
from api.pages import page as read_page
from api.schemas.common import GateIdPath, WorkflowIdPath
from api.schemas.workflows import DecisionCreate
from api.status import query_status
from api.ui.forms import (
    FormField,
    fields_of,
    merge_patch_between,
    parse_json,
    read_answers,
    read_fields,
)
from api.ui.render import diff
from api.ui.web import SignedIn, SignedInDep, UiRoute, first, page, read_form, see_other, ui_state
from workflows.models import GateView, RunStatus
from workflows.rules.pages import PageInput
from workflows.rules.votes import eligible

router = APIRouter(route_class=UiRoute)
# Pages of a run's steps read at most, looking for a step's gate that is no longer open.
MAX_STEP_PAGES = 10
# How the controls of a gate's form are named: `r.<field>`.
ANSWER = "r."


async def find_gate(request: Request, workflow_id: str, gate: str) -> tuple[RunStatus, GateView]:
    """The run's status and the gate, open or decided; 404 when the run has no such gate."""
    app, _ = ui_state(request)
    client = app.temporal.client
    status = await query_status(client, workflow_id)
    for g in status.open_gates:
        if g.gate == gate and (g.workflow_id in (None, workflow_id)):
            return status, g
    step, _, unit = gate.partition(".")
    found: GateView | None = None
    if unit.isdigit():
        after = str(int(unit) - 1) if int(unit) else None
        got = await read_page(client, workflow_id, PageInput(of="items", step=step, after=after))
        found = next((i.gate for i in got.items if i.index == int(unit) and i.gate), None)
    elif not unit:
        cursor: str | None = None
        for _ in range(MAX_STEP_PAGES):
            got = await read_page(client, workflow_id, PageInput(of="steps", after=cursor))
            s = next((s for s in got.steps if s.id == step), None)
            if s is not None or got.next_cursor is None:
                found = s.gate if s is not None else None
                break
            cursor = got.next_cursor
    if found is None or found.gate != gate:
        raise ApiError(404, "not_found", f"run {workflow_id!r} has no gate {gate!r}")
    return status, found


def _may_see(who: SignedIn, gate: GateView, acting: list[str]) -> bool:
    """Readers see every gate; an approver the gate names sees it too (as the inbox shows it),
    and so does a delegate of one (`acting`: whom the caller could decide for here)."""
    return (
        who.caller.can(READ)
        or eligible(gate.approvers, who.caller.principal, who.caller.roles)
        or bool(acting)
    )


async def acting_here(request: Request, principal: str, gate: GateView) -> list[str]:
    """Whom `principal` could decide this gate for, as the delegate of an absent approver."""
    app, _ = ui_state(request)
    now = datetime.now(UTC)
    delegations = await delegations_to(app.settings, principal, now)
    return acting_for(gate.approvers, voted(gate), delegations, now)


def answer_fields(gate: GateView) -> list[FormField] | None:
    """The controls of the gate's form (named `r.<field>`), if it has one."""
    return fields_of(gate.form, prefix=ANSWER) if gate.form else None


def voted(gate: GateView) -> list[str]:
    """Who has voted at the gate: each vote's actor, and whom a delegate's vote was cast for."""
    votes = (*gate.approvals, *gate.rejections)
    return [v.actor for v in votes] + [v.on_behalf_of for v in votes if v.on_behalf_of]


def _input_schema(registry: ToolRegistry, status: RunStatus, gate: GateView) -> Any:
    """The schema a modify of this gate's subject follows: the step's tool's input, before it
    runs; None (raw JSON only) for anything else."""
    if gate.stage != "before" or gate.step is None:
        return None
    step = next((s for s in status.steps if s.id == gate.step), None)
    if step is None or not step.tool:
        return None
    try:
        return registry.resolve(step.tool).input_model.model_json_schema()
    except (ToolError, KeyError, ValueError):
        return None


def _modify_fields(
    app_registry: ToolRegistry, status: RunStatus, gate: GateView
) -> list[FormField] | None:
    if "modify" not in gate.actions or not isinstance(gate.subject, dict):
        return None
    return fields_of(_input_schema(app_registry, status, gate), gate.subject)


async def _panel(
    request: Request,
    who: SignedIn,
    workflow_id: str,
    gate_id: str,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    app, _ = ui_state(request)
    status, gate = await find_gate(request, workflow_id, gate_id)
    acting = await acting_here(request, who.caller.principal, gate)
    if not _may_see(who, gate, acting):
        raise ApiError(403, "forbidden", f"{who.caller.principal!r} may not read this run")
    direct = who.caller.may_decide(gate.approvers, voted(gate))
    deciding = gate.state == "open" and (direct or bool(acting))
    return page(
        request,
        "gate.html",
        status_code,
        who=who,
        run=status,
        gate=gate,
        workflow_id=workflow_id,
        deciding=deciding,
        voted=who.caller.principal in voted(gate),
        acting_for=[] if direct else acting,
        modify_fields=_modify_fields(app.registry, status, gate) if deciding else None,
        response_fields=answer_fields(gate) if deciding else None,
        **extra,
    )


@router.get("/ui/runs/{workflow_id}/gates/{gate}", include_in_schema=False)
async def gate_page(
    request: Request, who: SignedInDep, workflow_id: WorkflowIdPath, gate: GateIdPath
) -> Response:
    return await _panel(request, who, workflow_id, gate)


@router.get("/ui/runs/{workflow_id}/gates/{gate}/live", include_in_schema=False)
async def gate_live(
    request: Request, who: SignedInDep, workflow_id: WorkflowIdPath, gate: GateIdPath
) -> Response:
    """The part of the gate panel that live updates redraw: state, votes, time left, subject."""
    _, view = await find_gate(request, workflow_id, gate)
    if not _may_see(who, view, await acting_here(request, who.caller.principal, view)):
        raise ApiError(403, "forbidden", f"{who.caller.principal!r} may not read this run")
    return page(request, "fragment.html", who=who, inner="gate_live.html", gate=view)


@router.post("/ui/runs/{workflow_id}/gates/{gate}/modify", include_in_schema=False)
async def modify_preview(
    request: Request, who: SignedInDep, workflow_id: WorkflowIdPath, gate: GateIdPath
) -> Response:
    """What a modify would change, shown before anything is sent."""
    form = await read_form(request, who)
    app, _ = ui_state(request)
    status, view = await find_gate(request, workflow_id, gate)
    shown = first(form, "digest")
    if shown != view.digest:
        return await _changed(request, who, workflow_id, gate)
    if first(form, "mode") == "json":
        proposed = parse_json(first(form, "raw") or "", "raw")
    else:
        fields = _modify_fields(app.registry, status, view) or []
        proposed = read_fields(fields, form, "subject", base=view.subject)
    patch = merge_patch_between(view.subject, proposed)
    if not isinstance(patch, dict) or not patch:
        raise ApiError(422, "invalid", "subject: nothing changed; a modify must change something")
    return page(
        request,
        "modify_confirm.html",
        who=who,
        workflow_id=workflow_id,
        gate=view,
        rows=diff(view.subject, proposed),
        patch=patch,
        comment=first(form, "comment") or "",
        response_fields=answer_fields(view),
    )


@router.post("/ui/runs/{workflow_id}/gates/{gate}", include_in_schema=False)
async def decide(
    request: Request, who: SignedInDep, workflow_id: WorkflowIdPath, gate: GateIdPath
) -> Response:
    form = await read_form(request, who)
    app, _ = ui_state(request)
    action = first(form, "action") or ""
    raw_patch = first(form, "patch")
    decision: dict[str, Any] = {
        "action": action,
        "comment": (first(form, "comment") or "").strip() or None,
        "digest": first(form, "digest"),
        "patch": parse_json(raw_patch, "patch") if raw_patch else None,
    }
    if any(name.startswith(ANSWER) for name in form):
        _, view = await find_gate(request, workflow_id, gate)
        answers = read_answers(answer_fields(view) or [], form, action in ("approve", "modify"))
        if answers is not None:
            decision["response"] = answers
    body = DecisionCreate.model_validate(decision)
    try:
        await submit(
            app.temporal.client,
            app.lanes,
            workflow_id,
            gate,
            body,
            who.caller,
            channel="web",
            settings=app.settings,
        )
    except ApiError as err:
        if err.code == "digest_mismatch":
            return await _changed(request, who, workflow_id, gate)
        raise
    return see_other(f"/ui/runs/{workflow_id}/gates/{gate}?decided={action}")


async def _changed(request: Request, who: SignedIn, workflow_id: str, gate: str) -> Response:
    """409: the subject changed since the page was shown; the panel shows the new one."""
    notice = "The subject changed after you opened this page: nothing was decided. Review the new subject below."
    return await _panel(request, who, workflow_id, gate, 409, notice=notice)
