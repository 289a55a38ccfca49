"""A gate offered to the person, not the model: `review_gate` sends them to the gate's page.

A model holding a person's key must not approve its own actions, so a key without
`decide_via_mcp` is never offered `decide`. Instead `review_gate` asks the client to show the
person the gate's page in the web app (URL-mode elicitation), where they sign in and decide;
whatever the client answers in band (accept, decline, any content) only says whether the page
was shown, and is never read as a decision. How it asks depends on the connection:

- at protocol 2026-07-28 the call returns an `InputRequiredResult` holding the URL request,
  and the client's retry (with any answer at all) gets the gate as it stands;
- on an older connection with a back channel whose client takes URL elicitation, the server
  sends `elicitation/create` and waits for the answer;
- otherwise the result names the page, for the client to show.
"""

from __future__ import annotations

from typing import Any

from mcp.server import ServerRequestContext
from mcp.shared.exceptions import NoBackChannelError
from mcp_types import (
    CallToolRequestParams,
    ElicitRequest,
    ElicitRequestURLParams,
    InputRequiredResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from api.mcp.backend import Backend, ToolError
from api.mcp.tools import GATE, RUN, object_schema

REVIEW_GATE = "review_gate"
REVIEW_SCHEMA = object_schema(["workflow_id", "gate"], workflow_id=RUN, gate=GATE)
REVIEW_DESCRIPTION = (
    "Ask the person to decide an open gate they may decide, on the gate's page in Stepgate's "
    "web app (URL elicitation: they sign in and decide there). Nothing answered through this "
    "client is taken as a decision; the result is the gate as it stands afterwards."
)
# The key under which the URL request travels in an InputRequiredResult.
ASK = "approver"
MAX_ELICITATION_ID_CHARS = 300
# How much of the gate's review (text a run may fill from its input) the request quotes.
MAX_QUOTE_CHARS = 300


def _quote(text: str) -> str:
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1] + "…"


def _voted(view: dict[str, Any]) -> list[str]:
    votes = [*view.get("approvals", []), *view.get("rejections", [])]
    return [who for v in votes for who in (v.get("actor"), v.get("on_behalf_of")) if who]


def _outcome(view: dict[str, Any], page: str, note: str) -> dict[str, Any]:
    """What the tool answers: the gate now, where it is decided, and that nothing was here."""
    keep = ("gate", "state", "stage", "review", "approvers", "quorum", "outcome", "decided_by")
    return {
        "decided_here": False,
        "page": page,
        "note": note,
        "gate": {k: view.get(k) for k in keep},
    }


def _url_elicitation(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The client declared that it takes URL-mode elicitation."""
    caps = ctx.session.client_capabilities
    return caps is not None and caps.elicitation is not None and caps.elicitation.url is not None


async def review_gate(
    backend: Backend,
    ctx: ServerRequestContext[Any, Any],
    params: CallToolRequestParams,
    args: dict[str, Any],
) -> dict[str, Any] | InputRequiredResult:
    workflow_id, gate = args["workflow_id"], args["gate"]
    view = await backend.gate(workflow_id, gate)
    if view is None:
        raise ToolError(f"not_found: run {workflow_id!r} has no gate {gate!r}")
    page = backend.gate_page(workflow_id, gate)
    if view["state"] != "open":
        return _outcome(view, page, f"the gate is {view['state']}: there is nothing to decide")
    caller = await backend.caller()
    voted = _voted(view)
    if not caller.may_decide(view["approvers"], voted) and not await backend.acting_for(
        caller, view["approvers"], voted
    ):
        raise ToolError(
            f"forbidden: {caller.principal!r} may not decide gate {gate!r} (it names "
            f"{_quote(', '.join(view['approvers']))}, or {caller.principal!r} voted on it "
            "already)"
        )
    message = (
        f"Stepgate asks {caller.principal} to decide gate {gate!r} of run {workflow_id!r}"
        + (f": {_quote(str(view['review']))}" if view.get("review") else "")
        + ". Open the page, sign in and decide there."
    )
    request = ElicitRequestURLParams(
        message=message,
        url=page,
        elicitation_id=f"{workflow_id}/{gate}/{view['round']}"[:MAX_ELICITATION_ID_CHARS],
    )
    asked = _url_elicitation(ctx)
    if asked and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        if not params.input_responses:
            return InputRequiredResult(input_requests={ASK: ElicitRequest(params=request)})
        # The retry: its answers say at most that the page was shown; they decide nothing.
    elif asked and ctx.session.can_send_request:
        try:
            await ctx.session.elicit_url(
                request.message, request.url, request.elicitation_id or "", ctx.request_id
            )
        except NoBackChannelError:
            asked = False
    else:
        asked = False
    now = await backend.gate(workflow_id, gate) or view
    if not asked:
        return _outcome(now, page, f"show the person this page to decide the gate: {page}")
    return _outcome(
        now, page, "the person was sent to the gate's page; a decision counts only when made there"
    )
