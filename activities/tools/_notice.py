"""What the three gate notify tools share: who a gate notice reaches personally, the link each
message carries (a signed one only on a personal channel), and the words that describe the gate.

Links are minted here, on the worker, from the worker's keys: no token is ever in history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from activities.address_book import AddressBook, Entry, address_book
from activities.config import Settings
from activities.errors import fatal
from activities.links import LinkClaims, gate_page_url, link_url, mint, new_nonce
from activities.notice import GateNotice

log = structlog.get_logger("stepgate.notify")
# What a missing setting was already said about, once per process.
_said: set[str] = set()


def _once(key: str, message: str) -> None:
    if key not in _said:
        _said.add(key)
        log.warning(message)


def now_utc() -> datetime:
    return datetime.now(UTC)


def page_link(settings: Settings, gate: GateNotice) -> str | None:
    """The gate's page in the web app (for shared channels and roles); None without a public URL."""
    if not settings.stepgate_public_url:
        _once("public_url", "STEPGATE_PUBLIC_URL is unset: gate notifications carry no link")
        return None
    return gate_page_url(settings.stepgate_public_url, gate.workflow_id, gate.gate)


def personal_link(
    settings: Settings, gate: GateNotice, principal: str, now: datetime
) -> str | None:
    """A link bound to `principal` and this round of the gate, expiring after
    STEPGATE_LINK_HOURS or at the gate's deadline; the plain page link without link keys."""
    page = page_link(settings, gate)
    if page is None:
        return None
    ring = settings.link_keyring()
    if not ring:
        _once(
            "link_keys",
            "no link key (STEPGATE_LINK_KEY or STEPGATE_LINK_KEYS): personal gate notifications "
            "carry the plain gate link",
        )
        return page
    expires = now + timedelta(hours=settings.stepgate_link_hours)
    if gate.deadline is not None:
        deadline = gate.deadline if gate.deadline.tzinfo else gate.deadline.replace(tzinfo=UTC)
        expires = min(expires, deadline)
    if expires <= now:
        return page  # past the deadline already: a link would be born expired
    claims = LinkClaims(
        workflow_id=gate.workflow_id,
        gate=gate.gate,
        round=gate.round,
        digest=gate.digest,
        principal=principal,
        expires=expires,
        nonce=new_nonce(),
    )
    try:
        token = mint(claims, ring, settings.stepgate_link_key_id)
    except ValueError:
        return page  # claims at their bounds too long for a token: the page still works
    return link_url(settings.stepgate_public_url, token)


@dataclass(frozen=True)
class Personal:
    """One principal to tell on their own channel, with their own link."""

    principal: str
    address: str
    link: str | None


async def current_book(settings: Settings) -> AddressBook:
    """The address book, read off the event loop; a broken one fails the call, naming where."""
    try:
        return await asyncio.to_thread(address_book, settings)
    except ValueError as err:
        raise fatal(str(err), "AddressBookInvalid") from None


@dataclass(frozen=True)
class Held:
    """Who quiet hours keep from being told now, and when the first of those hours ends."""

    principals: list[str]
    until: datetime | None

    def fields(self) -> dict[str, Any]:
        """As a notify tool's output (NoticeResult) reports them."""
        return {"held": self.principals, "held_until": self.until}


async def audience(
    settings: Settings, gate: GateNotice, channel: Callable[[Entry], str | None], now: datetime
) -> tuple[list[Personal], Held]:
    """Who the gate reaches on the channel `channel` picks from their entry, and who is held in
    their quiet hours (an urgent gate holds nobody). Principals without that channel are left
    out: shared channels reach them. A notice naming `only` (what quiet hours held, delivered
    by the run once they end) reaches those principals alone."""
    book = await current_book(settings)
    reach: list[Personal] = []
    held: list[str] = []
    until: datetime | None = None
    only = set(gate.only)
    for principal in book.recipients(gate.approvers, now):
        if only and principal not in only:
            continue
        entry = book.entry(principal)
        address = channel(entry) if entry is not None else None
        if address is None:
            continue
        ends = book.quiet_until(principal, now) if gate.priority != "urgent" else None
        if ends is not None:
            held.append(principal)
            until = ends if until is None else min(until, ends)
            continue
        reach.append(Personal(principal, address, personal_link(settings, gate, principal, now)))
    return reach, Held(held, until)


def headline(gate: GateNotice) -> str:
    """One line saying what happened to which gate."""
    where = f"gate {gate.gate!r} of {gate.pipeline} (run {gate.workflow_id})"
    if gate.event == "decided":
        who = ", ".join(gate.decided_by) or "nobody"
        return f"Decided: {where} was {gate.outcome or 'closed'} by {who}"
    prefix = {"opened": "Decision needed", "reminder": "Reminder", "escalation": "Escalated"}
    return f"{prefix[gate.event]}: {where} waits for a decision"


def facts(gate: GateNotice) -> list[str]:
    """Priority, deadline and step, as short `name: value` lines."""
    lines = [f"Priority: {gate.priority}"]
    if gate.deadline is not None:
        lines.append(f"Deadline: {gate.deadline.isoformat(timespec='minutes')}")
    if gate.step:
        lines.append(f"Step: {gate.step} ({gate.stage})")
    if gate.has_form:
        lines.append("This gate has a form: open the page to decide.")
    return lines
