"""`notify.webhook`: post a Slack-compatible message to a webhook; with a gate notice, the gate's
page link, or (`personal: true`) each approver's own webhook with their own signed link."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from temporalio.exceptions import ApplicationError

from activities.context import ToolContext
from activities.errors import fatal
from activities.notice import GateNotice, NoticeResult
from activities.registry import sends_to_fields, tool
from activities.tools._http import check_status, send, with_idempotency_key
from activities.tools._notice import audience, log, now_utc, page_link

# Webhook answers are short acknowledgements ("ok"); nothing more is worth reading.
_MAX_REPLY_BYTES = 16_384
# Slack's own bound on a message's text.
MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50


class NotifyWebhookInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="The message text (also the fallback for blocks).",
    )
    url: str | None = Field(None, description="Webhook URL; STEPGATE_NOTIFY_URL when omitted.")
    blocks: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_BLOCKS, description="Slack Block Kit blocks."
    )
    attachments: list[dict[str, Any]] | None = Field(
        None, max_length=MAX_BLOCKS, description="Slack attachments."
    )
    personal: bool = Field(
        False,
        description="With a gate notice: post to each recipient's own webhook from the address "
        "book, with their own signed link, instead of `url`.",
    )
    # Set by the run after the step's `with`; not in the schema, so a definition cannot set it.
    gate: SkipJsonSchema[GateNotice | None] = Field(None, description="the gate notified of")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Bound on the whole call.")


class NotifyWebhookOutput(NoticeResult):
    status: int = Field(0, description="The webhook's HTTP status (the last one posted to).")


async def _post(
    ctx: ToolContext, inp: NotifyWebhookInput, url: str, text: str, key_suffix: str
) -> int:
    # The URL itself is the credential for most webhooks: keep it out of failure messages.
    hidden = ctx.secret_values | {url}
    message = inp.model_dump(include={"blocks", "attachments"}, exclude_none=True)
    headers = with_idempotency_key({"Content-Type": "application/json"}, ctx)
    headers["Idempotency-Key"] += key_suffix
    reply = await send(
        ctx,
        "POST",
        url,
        headers=headers,
        content=json.dumps({"text": text, **message}),
        timeout_s=inp.timeout_s,
        max_body_bytes=_MAX_REPLY_BYTES,
        secrets=hidden,
    )
    check_status(reply, None, "the webhook", hidden)
    return reply.status


@tool("notify.webhook", "1.0.0", risk="medium", sends_to=sends_to_fields("url", "personal"))
async def notify_webhook(inp: NotifyWebhookInput, ctx: ToolContext) -> NotifyWebhookOutput:
    """Post a Slack-compatible JSON message ({text, blocks, attachments}) to a webhook."""
    gate = inp.gate
    if gate is not None and gate.event == "decided":
        return NotifyWebhookOutput()  # a webhook message cannot be updated: nothing to do
    if inp.personal:
        if gate is None:
            raise fatal(
                "notify.webhook `personal: true` needs a gate notice: use it in a gate's `notify`",
                "NotifyNoGate",
            )
        reach, held = await audience(ctx.settings, gate, lambda e: e.webhook, now_utc())
        status, sent, failed = 0, 0, []
        for person in reach:
            text = f"{inp.text}\n{person.link}" if person.link else inp.text
            try:
                status = await _post(ctx, inp, person.address, text, f"/{person.principal}")
                sent += 1
            except ApplicationError as err:
                # One approver's broken webhook must not keep the others from being told.
                log.warning(
                    "personal webhook failed", principal=person.principal, error=err.message
                )
                failed.append(err)
        if failed and not sent:
            raise failed[0]
        return NotifyWebhookOutput(status=status, sent=sent, **held.fields())
    url = inp.url or ctx.settings.stepgate_notify_url
    if not url:
        raise fatal(
            "notify.webhook needs a `url` or STEPGATE_NOTIFY_URL on the worker", "NotifyNoUrl"
        )
    link = page_link(ctx.settings, gate) if gate is not None else None
    text = f"{inp.text}\n{link}" if link else inp.text
    status = await _post(ctx, inp, url, text, "")
    return NotifyWebhookOutput(status=status, sent=1)
