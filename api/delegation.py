"""Out-of-office delegations as the API hands them to the gate rules: the address book
(activities/address_book.py) says whose gates a principal may decide while they are away; every
decision carries those (`Decision.delegations`), and the workflow's vote rules check each window
again when the vote is cast. The inbox asks the same question to list a delegate's gates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import anyio

from activities.address_book import AddressBook, address_book, book_due
from activities.config import Settings
from workflows.models import MAX_DELEGATIONS, Delegation
from workflows.rules.votes import principals_of


async def current_book(settings: Settings) -> AddressBook:
    """The address book, read in a thread when the file is due a look (never on the loop)."""
    if book_due(settings):
        return await anyio.to_thread.run_sync(address_book, settings)
    return address_book(settings, look=False)


async def delegations_to(settings: Settings, delegate: str, now: datetime) -> list[Delegation]:
    """The principals who delegate to `delegate` now, each with the end of its window (at most
    MAX_DELEGATIONS, what one decision may carry)."""
    found = (await current_book(settings)).delegations_to(delegate, now)
    return [Delegation(principal=p, until=until) for p, until in found[:MAX_DELEGATIONS]]


def acting_for(
    approvers: Iterable[str], voted: Iterable[str], delegations: Iterable[Delegation], now: datetime
) -> list[str]:
    """The absent principals a gate with `approvers` names as users, whose delegation holds at
    `now` and who have not voted (`voted`: each vote's actor and whom it was cast for): whom
    the delegate could decide for here. Direct eligibility is the caller's own question."""
    named = set(approvers)
    gone = set(voted)
    return [
        d.principal
        for d in delegations
        if principals_of(d.principal, ())[0] in named and d.principal not in gone and now <= d.until
    ]
