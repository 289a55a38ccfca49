"""`notify.slack`: a gate as a Block Kit message through the Slack Web API, with approve/reject
buttons; to a channel with the plain page link, or to each recipient's DM with their own signed
link; on "decided", each posted message is updated to say who decided what, without buttons."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from temporalio.exceptions import ApplicationError

from activities.context import ToolContext
from activities.errors import fatal, transient
from activities.notice import MAX_POSTS, GateNotice, NoticeResult, PostRef
from activities.registry import sends_to_fields, tool
from activities.tools._http import check_status, send
from activities.tools._notice import audience, log, now_utc, page_link
from activities.tools._slack_blocks import decided_blocks, fallback, gate_blocks

# Slack's answers to chat.* calls are small JSON objects.
MAX_REPLY_BYTES = 65_536
MAX_TEXT_CHARS = 40_000
# Slack errors worth another attempt; every other `ok: false` is the request's own fault.
_RETRYABLE = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_ERROR_CODE = re.compile(r"^[a-z0-9_]{1,100}$")
# A channel id (C…, G…, D…), a user id for a DM, or a #name.
CHANNEL_PATTERN = r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGDUW][A-Z0-9]{2,30})$"


class NotifySlackInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The message text.")
    channel: str | None = Field(
        None,
        pattern=CHANNEL_PATTERN,
        description="A shared channel (id or #name) to post to, with the page link; omitted: a "
        "direct message to each recipient with their own signed link.",
    )
    # Set by the run after the step's `with`; not in the schema, so a definition cannot set it.
    gate: SkipJsonSchema[GateNotice | None] = Field(None, description="the gate notified of")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Bound on each Web API call.")


async def _call(ctx: ToolContext, method: str, body: dict[str, Any], timeout_s: float) -> Any:
    """One Web API call with the bot token; `ok: false` and bad answers become Temporal errors,
    never echoing the token."""
    token = ctx.settings.stepgate_slack_bot_token
    if not token:
        raise fatal("notify.slack needs STEPGATE_SLACK_BOT_TOKEN on the worker", "NotifyNoToken")
    hidden = ctx.secret_values | {token}
    reply = await send(
        ctx,
        "POST",
        f"{ctx.settings.stepgate_slack_api_url}/{method}",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        },
        content=json.dumps(body),
        timeout_s=timeout_s,
        max_body_bytes=MAX_REPLY_BYTES,
        secrets=hidden,
    )
    check_status(reply, None, f"Slack {method}", hidden)
    try:
        answer = json.loads(reply.body) if not reply.truncated else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise transient(f"Slack {method} did not answer with a JSON object", "SlackBadReply")
    if answer.get("ok") is not True:
        error = answer.get("error")
        code = error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown"
        make = transient if code in _RETRYABLE else fatal
        raise make(f"Slack {method} refused: {code}", "SlackError", error=code)
    return answer


def _post_ref(answer: dict[str, Any]) -> PostRef | None:
    channel, ts = answer.get("channel"), answer.get("ts")
    if isinstance(channel, str) and isinstance(ts, str) and 0 < len(channel) <= 200:
        if 0 < len(ts) <= 64:
            return PostRef(channel=channel, ts=ts)
    return None


async def _update_decided(ctx: ToolContext, gate: GateNotice, timeout_s: float) -> NoticeResult:
    text, blocks = fallback(gate, ""), decided_blocks(gate)
    sent = 0
    for post in gate.posts[:MAX_POSTS]:
        body = {"channel": post.channel, "ts": post.ts, "text": text, "blocks": blocks}
        try:
            await _call(ctx, "chat.update", body, timeout_s)
            sent += 1
        except ApplicationError as err:
            if err.non_retryable:  # a deleted message or a left channel: the others still update
                log.warning("Slack message not updated", channel=post.channel, error=err.message)
                continue
            raise
    return NoticeResult(sent=sent)


@tool("notify.slack", "1.0.0", risk="medium", sends_to=sends_to_fields("channel"))
async def notify_slack(inp: NotifySlackInput, ctx: ToolContext) -> NoticeResult:
    """Post to Slack through the Web API (chat.postMessage; chat.update once a gate is decided)."""
    gate = inp.gate
    if gate is not None and gate.event == "decided":
        return await _update_decided(ctx, gate, inp.timeout_s)
    if inp.channel is not None or gate is None:
        if inp.channel is None:
            raise fatal("notify.slack needs a `channel` outside a gate's notify", "NotifyNoChannel")
        link = page_link(ctx.settings, gate) if gate is not None else None
        body: dict[str, Any] = {"channel": inp.channel, "text": fallback(gate, inp.text)}
        if gate is not None:
            body["blocks"] = gate_blocks(gate, inp.text, link)
        ref = _post_ref(await _call(ctx, "chat.postMessage", body, inp.timeout_s))
        return NoticeResult(posts=[ref] if ref else [], sent=1)
    reach, held = await audience(ctx.settings, gate, lambda e: e.slack, now_utc())
    posts: list[PostRef] = []
    sent, failed = 0, []
    for person in reach:
        body = {
            "channel": person.address,
            "text": fallback(gate, inp.text),
            "blocks": gate_blocks(gate, inp.text, person.link),
        }
        try:
            ref = _post_ref(await _call(ctx, "chat.postMessage", body, inp.timeout_s))
        except ApplicationError as err:
            # One approver's closed DM must not keep the others from being told.
            log.warning("Slack message not sent", principal=person.principal, error=err.message)
            failed.append(err)
            continue
        sent += 1
        if ref is not None and len(posts) < MAX_POSTS:
            posts.append(ref)
    if failed and not sent:
        raise failed[0]
    return NoticeResult(posts=posts, sent=sent, **held.fields())
