"""`notify.webhook`: post a Slack-compatible message to a webhook."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import sends_to_fields, tool
from activities.tools._http import check_status, send, with_idempotency_key

# Webhook answers are short acknowledgements ("ok"); nothing more is worth reading.
_MAX_REPLY_BYTES = 16_384


class NotifyWebhookInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The message text (also the fallback for blocks).")
    url: str | None = Field(None, description="Webhook URL; STEPGATE_NOTIFY_URL when omitted.")
    blocks: list[dict[str, Any]] | None = Field(None, description="Slack Block Kit blocks.")
    attachments: list[dict[str, Any]] | None = Field(None, description="Slack attachments.")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Bound on the whole call.")


class NotifyWebhookOutput(BaseModel):
    status: int = Field(description="The webhook's HTTP status.")


@tool("notify.webhook", "1.0.0", risk="medium", sends_to=sends_to_fields("url"))
async def notify_webhook(inp: NotifyWebhookInput, ctx: ToolContext) -> NotifyWebhookOutput:
    """Post a Slack-compatible JSON message ({text, blocks, attachments}) to a webhook."""
    url = inp.url or ctx.settings.stepgate_notify_url
    if not url:
        raise fatal(
            "notify.webhook needs a `url` or STEPGATE_NOTIFY_URL on the worker", "NotifyNoUrl"
        )
    # The URL itself is the credential for most webhooks: keep it out of failure messages.
    hidden = ctx.secret_values | {url}
    message = inp.model_dump(include={"text", "blocks", "attachments"}, exclude_none=True)
    reply = await send(
        ctx,
        "POST",
        url,
        headers=with_idempotency_key({"Content-Type": "application/json"}, ctx),
        content=json.dumps(message),
        timeout_s=inp.timeout_s,
        max_body_bytes=_MAX_REPLY_BYTES,
        secrets=hidden,
    )
    check_status(reply, None, "the webhook", hidden)
    return NotifyWebhookOutput(status=reply.status)
