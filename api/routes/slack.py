"""`POST /integrations/slack/interactions`: a Slack user pressed approve or reject on a gate's
message (activities/tools/notify_slack.py posts it). Slack's request signature is the only
authentication (no bearer key: api/admission.py lets it through); a request that fails it is a
401 and nothing else. The Slack user is mapped to a principal through the address book, which
then decides with every gate rule, as through the API, with channel "slack". Slack waits 3 s at
most: the answer is an empty 200 at once, and the decision runs after it; a refusal (an unmapped
user, one the gate does not name, a closed gate, a changed subject) reaches the person alone, as
an ephemeral message through the Web API's `chat.postEphemeral`, and changes nothing.

Not in the OpenAPI document: it speaks Slack's protocol (a signed urlencoded `payload`), not
Stepgate's JSON, and nobody but Slack can call it."""

from __future__ import annotations

import json
import time
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx
import structlog
from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.documents import DocumentError, parse_json
from api.admission import SLACK_INTERACTIONS
from api.decisions import submit
from api.delegation import current_book
from api.errors import ApiError
from api.schemas.workflows import DecisionCreate
from api.slack_signature import MAX_BODY_BYTES, SignatureRefused, verify
from api.state import ApiState
from workflows.language.limits import MAX_NAME_CHARS

log = structlog.get_logger("stepgate.api.slack")
router = APIRouter()
# How long the ephemeral answer may take to post (Slack answers in well under a second).
POST_TIMEOUT_S = 10.0
# What Slack's answer to chat.postEphemeral may be, read at most.
MAX_ANSWER_BYTES = 65_536
# An ephemeral message says at most this much.
MAX_TEXT_CHARS = 1_000
FORM_TYPE = "application/x-www-form-urlencoded"
# The buttons notify.slack posts: action_id is the action.
ACTIONS = ("approve", "reject")
_SLACK_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class _Id(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=_SLACK_ID)


class _Action(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action_id: str = Field(max_length=64)
    value: str = Field("", max_length=4_096)


class _Container(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel_id: str | None = Field(None, pattern=_SLACK_ID)


class BlockActions(BaseModel):
    """The part of Slack's block_actions payload this route reads; the rest is ignored."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["block_actions"]
    user: _Id
    channel: _Id | None = None
    container: _Container | None = None
    actions: list[_Action] = Field(min_length=1, max_length=1)

    @property
    def channel_id(self) -> str | None:
        if self.channel is not None:
            return self.channel.id
        return self.container.channel_id if self.container is not None else None


class ButtonValue(BaseModel):
    """What notify.slack puts in a button's value: the gate and the subject it showed."""

    model_config = ConfigDict(extra="forbid")
    workflow_id: str = Field(min_length=1, max_length=MAX_NAME_CHARS * 5)
    gate: str = Field(min_length=1, max_length=MAX_NAME_CHARS * 5)
    digest: str = Field(min_length=1, max_length=200)


async def _raw_body(request: Request) -> bytes:
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"a body of at most {MAX_BODY_BYTES} bytes")
    return bytes(data)


def _payload(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON `payload` field of Slack's urlencoded body; 4xx naming what is wrong."""
    if content_type.split(";")[0].strip().lower() != FORM_TYPE:
        raise ApiError(415, "unsupported_media_type", f"Slack sends {FORM_TYPE}")
    try:
        fields = parse_qs(body.decode(), strict_parsing=True, max_num_fields=10)
        (raw,) = fields["payload"]
        parsed = parse_json(raw.encode())
    except (ValueError, KeyError, UnicodeDecodeError, DocumentError):
        raise ApiError(400, "unparseable", "payload: one field holding a JSON object") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "unparseable", "payload: one field holding a JSON object")
    return parsed


@router.post(SLACK_INTERACTIONS, include_in_schema=False)
async def interactions(request: Request, background: BackgroundTasks) -> Response:
    state: ApiState = request.app.state.stepgate
    body = await _raw_body(request)
    secret = state.settings.stepgate_slack_signing_secret or ""
    now = time.time()
    signature = request.headers.get("x-slack-signature")
    try:
        verify(secret, request.headers.get("x-slack-request-timestamp"), signature, body, now)
        if signature is None or not state.slack_replays.first(signature, now):
            raise SignatureRefused("this request was received before")
    except SignatureRefused as err:
        raise ApiError(401, "bad_signature", f"not a request from Slack: {err.reason}") from None
    payload = _payload(body, request.headers.get("content-type", ""))
    if payload.get("type") != "block_actions":
        return Response(status_code=200)  # other interactions: not ours to answer
    try:
        press = BlockActions.model_validate(payload)
    except ValidationError as err:
        where = ", ".join(".".join(map(str, e["loc"])) for e in err.errors())[:300]
        raise ApiError(
            400, "invalid", f"payload: not a button press Stepgate posted ({where})"
        ) from None
    background.add_task(_decide, state, press)
    return Response(status_code=200)


async def _decide(state: ApiState, press: BlockActions) -> None:
    """Apply the press as its user's principal; tell the user alone what came of it."""
    read = await _read(state, press)
    if isinstance(read, str):
        await _ephemeral(state, press, read)
        return
    principal, value = read
    caller = await state.keys.deciding(principal)
    if caller is None:
        await _ephemeral(state, press, f"{principal} has no active API key: nothing was decided.")
        return
    action = press.actions[0].action_id
    body = DecisionCreate.model_validate({"action": action, "digest": value.digest})
    try:
        state.limits.admit(principal)
        view = await submit(
            state.temporal.client,
            state.lanes,
            value.workflow_id,
            value.gate,
            body,
            caller,
            channel="slack",
            settings=state.settings,
        )
    except ApiError as err:
        await _ephemeral(state, press, f"Nothing was decided: {err.message}")
        return
    done = f"Recorded: {principal} voted {action} at {value.gate}; the gate is {view.state}."
    await _ephemeral(state, press, done)


async def _read(state: ApiState, press: BlockActions) -> tuple[str, ButtonValue] | str:
    """Who pressed which gate's button, or why the press decides nothing."""
    action = press.actions[0]
    if action.action_id not in ACTIONS:
        return f"Stepgate has no button {action.action_id!r}: nothing was decided."
    try:
        value = ButtonValue.model_validate_json(action.value)
    except ValidationError:
        return "This button does not name a gate Stepgate posted: nothing was decided."
    principal = (await current_book(state.settings)).principal_for_slack(press.user.id)
    if principal is None:
        return (
            "Your Slack account is not in Stepgate's address book, so Stepgate cannot tell who "
            "you are: nothing was decided. Decide on the gate's page instead."
        )
    return principal, value


async def _ephemeral(state: ApiState, press: BlockActions, text: str) -> None:
    """chat.postEphemeral to the person who pressed, in the channel they pressed in; failures
    are logged (without the token), never raised: the press has had its answer."""
    settings = state.settings
    channel = press.channel_id
    token = settings.stepgate_slack_bot_token
    if channel is None or not token:
        log.warning("slack_ephemeral_skipped", why="no channel" if channel is None else "no token")
        return
    url = f"{settings.stepgate_slack_api_url}/chat.postEphemeral"
    message = {"channel": channel, "user": press.user.id, "text": text[:MAX_TEXT_CHARS]}
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            httpx.AsyncClient(timeout=POST_TIMEOUT_S, follow_redirects=False) as http,
            http.stream("POST", url, json=message, headers=headers) as answer,
        ):
            content = bytearray()
            async for chunk in answer.aiter_bytes():
                content += chunk
                if len(content) > MAX_ANSWER_BYTES:
                    break
            status = answer.status_code
    except httpx.HTTPError as err:
        log.warning("slack_ephemeral_failed", error=type(err).__name__)
        return
    if status != 200 or not _ok(bytes(content)):
        log.warning("slack_ephemeral_refused", status=status)


def _ok(content: bytes) -> bool:
    try:
        return bool(json.loads(content).get("ok"))
    except (ValueError, AttributeError):
        return False
