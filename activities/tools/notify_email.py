"""`notify.email`: a gate notification by SMTP, plain text plus HTML; to the addresses given
with the plain page link, or to each recipient's address from the address book with their own
signed link."""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
from email.message import EmailMessage
from email.utils import formatdate

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from activities.address_book import EMAIL_PATTERN, Entry
from activities.context import ToolContext
from activities.errors import fatal, transient
from activities.notice import GateNotice, NoticeResult
from activities.registry import sends_to_fields, tool
from activities.tools._notice import audience, facts, headline, log, now_utc, page_link
from activities.tools._smtp import checked_address, deliver

MAX_TO = 50
MAX_TEXT_CHARS = 100_000
MAX_SUBJECT_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class NotifyEmailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The message text.")
    to: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TO,
        description="Addresses (a team list: the plain page link); omitted: each recipient's "
        "address from the address book, with their own signed link.",
    )
    subject: str | None = Field(None, max_length=MAX_SUBJECT_CHARS, description="The subject.")
    # Set by the run after the step's `with`; not in the schema, so a definition cannot set it.
    gate: SkipJsonSchema[GateNotice | None] = Field(None, description="the gate notified of")
    timeout_s: float = Field(30.0, gt=0, le=300, description="Bound on the whole call.")

    @field_validator("to")
    @classmethod
    def _plain_addresses(cls, value: list[str] | None) -> list[str] | None:
        # The address book's rule: one plain address, nothing a header could break on.
        for i, address in enumerate(value or []):
            if len(address) > 254 or not re.match(EMAIL_PATTERN, address):
                raise ValueError(f"to.{i}: not one plain email address")
        return value


def _subject(inp: NotifyEmailInput) -> str:
    raw = inp.subject or (headline(inp.gate) if inp.gate else inp.text.split("\n", 1)[0])
    return _CONTROL.sub(" ", raw).strip()[:MAX_SUBJECT_CHARS] or "Stepgate"


def _message(
    ctx: ToolContext, inp: NotifyEmailInput, to: list[str], link: str | None, who: str
) -> EmailMessage:
    gate = inp.gate
    lines = [headline(gate), "", inp.text, "", *facts(gate)] if gate else [inp.text]
    if link:
        lines += ["", f"Open: {link}"]
    body = "\n".join(lines)
    message = EmailMessage()
    message["From"] = ctx.settings.stepgate_smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = _subject(inp)
    message["Date"] = formatdate(usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    # The same call (retried) gives the same id, so a server or client can drop a repeat.
    digest = hashlib.sha256(f"{ctx.idempotency_key}/{who}".encode()).hexdigest()[:40]
    message["Message-ID"] = f"<{digest}@stepgate>"
    message.set_content(body)
    # Every value escaped; no remote content, no scripts: mail clients render it as sent.
    parts = [
        f"<p>{html.escape(line)}</p>" if line else "" for line in lines[: -2 if link else None]
    ]
    if link:
        parts.append(f'<p><a href="{html.escape(link, quote=True)}">Open the gate</a></p>')
    message.add_alternative(
        "<!doctype html><html><body>" + "\n".join(p for p in parts if p) + "</body></html>",
        subtype="html",
    )
    return message


async def _send(
    ctx: ToolContext, messages: list[EmailMessage], timeout_s: float
) -> tuple[int, list[str]]:
    pinned = await checked_address(ctx.settings)
    try:
        async with asyncio.timeout(timeout_s):
            return await asyncio.to_thread(deliver, ctx.settings, pinned, messages, timeout_s)
    except TimeoutError:
        raise transient(f"SMTP took longer than {timeout_s:g}s", "SmtpTimeout") from None


@tool("notify.email", "1.0.0", risk="medium", sends_to=sends_to_fields("to"))
async def notify_email(inp: NotifyEmailInput, ctx: ToolContext) -> NoticeResult:
    """Send a plain-text and HTML mail through the operator's SMTP server."""
    settings, gate = ctx.settings, inp.gate
    if gate is not None and gate.event == "decided":
        return NoticeResult()  # a sent mail cannot be updated: nothing to do
    if not settings.stepgate_smtp_host or not settings.stepgate_smtp_from:
        raise fatal(
            "notify.email needs STEPGATE_SMTP_HOST and STEPGATE_SMTP_FROM on the worker",
            "NotifyNoSmtp",
        )
    if settings.stepgate_smtp_username and settings.stepgate_smtp_security == "none":
        raise fatal(
            "notify.email never sends SMTP credentials without TLS: set STEPGATE_SMTP_SECURITY "
            "to starttls or tls",
            "NotifyNoSmtp",
        )
    if inp.to is not None or gate is None:
        if inp.to is None:
            raise fatal("notify.email needs `to` outside a gate's notify", "NotifyNoRecipient")
        link = page_link(settings, gate) if gate is not None else None
        sent, failed = await _send(ctx, [_message(ctx, inp, inp.to, link, "to")], inp.timeout_s)
        if failed:
            raise fatal(f"the SMTP server refused the mail: {failed[0]}", "SmtpError")
        return NoticeResult(sent=sent)

    def email(entry: Entry) -> str | None:
        return entry.email

    reach, held = await audience(settings, gate, email, now_utc())
    if not reach:
        return NoticeResult(**held.fields())
    messages = [_message(ctx, inp, [p.address], p.link, p.principal) for p in reach]
    sent, failed = await _send(ctx, messages, inp.timeout_s)
    if failed:
        log.warning("mail refused for some recipients", refused=len(failed), first=failed[0])
        if not sent:
            raise fatal(f"the SMTP server refused every mail: {failed[0]}", "SmtpError")
    return NoticeResult(sent=sent, **held.fields())
