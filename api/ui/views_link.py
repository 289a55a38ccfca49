"""A signed link's page (`/ui/links/{token}`): the gate it was sent for, decided by its principal
without signing in. A GET only shows the page (a mail scanner that follows the link decides
nothing); a POST from that page decides, once. Every refusal is a page naming why: a tampered
or unknown-key link, expired, used, a closed gate, a changed subject or round, a browser signed
in as someone else, a principal with no active key.

The token is the credential: it is checked again on the POST, it is never written into the page
(the form posts to the page's own address), and the access log cuts it from the path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam

from activities.links import MAX_TOKEN_CHARS, LinkClaims, LinkRefused, verify
from api.access_log import note_principal
from api.auth import Caller
from api.decisions import submit
from api.errors import ApiError
from api.schemas.workflows import DecisionCreate
from api.ui.forms import read_answers
from api.ui.session import COOKIE
from api.ui.views_gate import ANSWER, acting_here, answer_fields, find_gate, voted
from api.ui.web import UiRoute, first, page, read_form, ui_state
from workflows.models import GateView, RunStatus

router = APIRouter(route_class=UiRoute)
TokenPath = Annotated[str, PathParam(min_length=1, max_length=MAX_TOKEN_CHARS)]
# Link actions: every action a gate offers but modify, which needs a preview of its difference
# (the gate's page offers it, after signing in).
LINK_ACTIONS = ("approve", "reject", "retry", "skip", "cancel")

# Why a link is refused: (status, code, what the page says).
REFUSALS: dict[str, tuple[int, str, str]] = {
    "malformed": (403, "link_tampered", "This link is not valid: it was cut short or altered."),
    "bad_signature": (403, "link_tampered", "This link is not valid: it was altered."),
    "unknown_key": (
        403,
        "link_unknown_key",
        "This link was signed with a key this Stepgate no longer holds; ask for a new one.",
    ),
    "expired": (410, "link_expired", "This link has expired."),
    "closed": (409, "gate_closed", "This gate is no longer open: nothing is left to decide."),
    "changed": (
        409,
        "link_stale",
        "What this link was sent for has changed since (the subject or the round of the gate): "
        "this link decides nothing any more. Open the gate's page to see it as it is now.",
    ),
    "used": (409, "link_used", "This link has been used: a vote for you is already recorded."),
    "other_principal": (
        403,
        "link_other_principal",
        "This browser is signed in as someone else than the person this link was sent to. "
        "Sign out first, or open the gate's page as yourself.",
    ),
    "no_key": (
        403,
        "no_active_key",
        "The person this link was sent to has no active API key any more, so it decides nothing.",
    ),
}


class Refused(Exception):
    """Why a link decides nothing (a key of REFUSALS), and what the page may say about it."""

    def __init__(self, reason: str, claims: LinkClaims | None = None, **facts: Any) -> None:
        self.reason, self.claims, self.facts = reason, claims, facts


@dataclass(frozen=True)
class Opened:
    """A link that holds now: whom it is for, as whom they decide, and the gate as it is."""

    claims: LinkClaims
    caller: Caller
    status: RunStatus
    gate: GateView
    acting: list[str]


async def _open(request: Request, token: str) -> Opened:
    """Everything a link must pass, in order; Refused naming the first that fails."""
    app, sessions = ui_state(request)
    try:
        claims = verify(token, app.settings.link_keyring(), datetime.now(UTC))
    except LinkRefused as err:
        raise Refused(err.reason) from None
    # A genuine link acts as its principal: its requests are theirs, in the log and the rate.
    note_principal(request.scope, claims.principal)
    app.limits.admit(claims.principal)
    session = sessions.open(request.cookies.get(COOKIE))
    if session is not None and session.principal != claims.principal:
        raise Refused("other_principal", claims, signed_in=session.principal)
    caller = await app.keys.deciding(claims.principal)
    if caller is None:
        raise Refused("no_key", claims)
    status, gate = await find_gate(request, claims.workflow_id, claims.gate)
    if gate.state != "open":
        raise Refused("closed", claims, gate=gate)
    if gate.round != claims.round or gate.digest != claims.digest:
        raise Refused("changed", claims)
    if claims.principal in voted(gate):
        raise Refused("used", claims)
    return Opened(claims, caller, status, gate, await acting_here(request, claims.principal, gate))


def _refused(request: Request, why: Refused) -> Response:
    status, code, message = REFUSALS[why.reason]
    return page(
        request,
        "link_refused.html",
        status,
        code=code,
        message=message,
        claims=why.claims,
        **why.facts,
    )


@router.get("/ui/links/{token}", include_in_schema=False)
async def link_page(request: Request, token: TokenPath) -> Response:
    """The gate the link was sent for, with a form whose buttons decide; nothing changes here."""
    try:
        opened = await _open(request, token)
    except Refused as why:
        return _refused(request, why)
    direct = opened.caller.may_decide(opened.gate.approvers, voted(opened.gate))
    deciding = direct or bool(opened.acting)
    return page(
        request,
        "link.html",
        run=opened.status,
        gate=opened.gate,
        claims=opened.claims,
        deciding=deciding,
        actions=[a for a in opened.gate.actions if a in LINK_ACTIONS],
        acting_for=[] if direct else opened.acting,
        response_fields=answer_fields(opened.gate) if deciding else None,
    )


@router.post("/ui/links/{token}", include_in_schema=False)
async def link_decide(request: Request, token: TokenPath) -> Response:
    """Decide as the link's principal, once, with every gate rule (the workflow checks them)."""
    # A form from this page carries its origin (browsers send it on every POST); no Origin, or
    # another one, is not this page.
    if request.headers.get("origin") is None:
        raise ApiError(403, "cross_origin", "this form was not sent from this page")
    form = await read_form(request, None)
    try:
        opened = await _open(request, token)
    except Refused as why:
        return _refused(request, why)
    action = first(form, "action") or ""
    offered = [a for a in opened.gate.actions if a in LINK_ACTIONS]
    if action not in offered:
        raise ApiError(422, "invalid", f"action: one of {', '.join(offered)}")
    decision: dict[str, Any] = {
        "action": action,
        "comment": (first(form, "comment") or "").strip() or None,
        # The subject the link was sent for: one that changed since is refused by the workflow.
        "digest": opened.claims.digest,
    }
    if any(name.startswith(ANSWER) for name in form):
        fields = answer_fields(opened.gate) or []
        answers = read_answers(fields, form, action == "approve")
        if answers is not None:
            decision["response"] = answers
    body = DecisionCreate.model_validate(decision)
    app, _ = ui_state(request)
    claims = opened.claims
    try:
        view = await submit(
            app.temporal.client,
            app.lanes,
            claims.workflow_id,
            claims.gate,
            body,
            opened.caller,
            channel="link",
            settings=app.settings,
        )
    except ApiError as err:
        reason = {"digest_mismatch": "changed", "already_voted": "used", "gate_not_open": "closed"}
        if err.code in reason:
            return _refused(request, Refused(reason[err.code], claims))
        raise
    return page(
        request, "link_done.html", gate=view, claims=claims, action=action, run=opened.status
    )
