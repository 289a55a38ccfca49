"""The address book (STEPGATE_ADDRESS_BOOK): YAML keyed by principal, saying how to reach each
one (email, Slack user id, personal webhook), which roles they fill, their quiet hours and their
out-of-office delegate. Validated and bounded; reread when it changes (activities/watched.py)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from activities.access import PRINCIPAL_NAME_PATTERN, read_document
from activities.addresses import url_host_port
from activities.watched import WatchedFile

if TYPE_CHECKING:
    from activities.config import Settings

BOOK_ENV = "STEPGATE_ADDRESS_BOOK"
MAX_ENTRIES = 5_000
MAX_ROLES = 50
# Who one notification may address: as many as a gate may name approvers.
MAX_RECIPIENTS = 100
_NAME_CHARS = 200
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,3}$")
# An address a header can carry whole: no spaces, quotes, brackets or line breaks.
EMAIL_PATTERN = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def _utc(moment: datetime | None) -> datetime | None:
    """A moment without a zone is UTC, as in the keys file."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


class QuietHours(BaseModel):
    """A daily window (local time in `tz`) when a principal is not told, unless it is urgent;
    `start` after `end` spans midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str
    tz: str = Field("UTC", max_length=64)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _CLOCK.match(value):
            # YAML reads an unquoted 22:00 as the number 1320.
            raise ValueError('a time is "HH:MM" in quotes, e.g. "22:00"')
        return value

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        if not _ZONE.match(value):
            raise ValueError("not a time zone name such as Europe/Berlin")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError("not a known time zone (IANA names, e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        return self

    def holds(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.tz)).time()
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        return start <= local < end if start < end else local >= start or local < end

    def ends_after(self, now: datetime) -> datetime:
        """The first end of the window after `now` (UTC): today's `end` in `tz`, or tomorrow's
        once today's has passed. An end the clocks skip (02:30 on the night they go forward)
        falls an hour later by the new clock; one they pass twice ends at the second."""
        zone = ZoneInfo(self.tz)
        today = now.astimezone(zone).date()
        end = time.fromisoformat(self.end)
        ends = sorted(
            datetime.combine(today + timedelta(days=days), end, tzinfo=zone)
            .replace(fold=fold)
            .astimezone(UTC)
            for days in range(3)
            for fold in (0, 1)
        )
        return next(moment for moment in ends if moment > now)


class Delegate(BaseModel):
    """Who decides for the principal while they are away, from `from` (default: now) to `until`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    to: str = Field(min_length=1, max_length=_NAME_CHARS, pattern=PRINCIPAL_NAME_PATTERN)
    since: datetime | None = Field(None, alias="from", description="naive means UTC")
    until: datetime = Field(description="naive means UTC")

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> Delegate:
        if self.since is not None and self.since >= self.until:
            raise ValueError("`from` is not before `until`")
        return self

    def active(self, now: datetime) -> bool:
        return (self.since is None or self.since <= now) and now <= self.until


class Entry(BaseModel):
    """How to reach one principal; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN)
    slack: str | None = Field(None, pattern=_SLACK_USER.pattern, description="Slack user id")
    webhook: str | None = Field(None, max_length=2_000, description="personal webhook URL")
    roles: list[str] = Field(default_factory=list, max_length=MAX_ROLES)
    quiet_hours: QuietHours | None = None
    delegate: Delegate | None = None

    @field_validator("webhook")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        # The message never echoes the URL: a webhook URL is its own credential.
        if value is not None and url_host_port(value) is None:
            raise ValueError("not an http(s) URL")
        return value

    @field_validator("roles")
    @classmethod
    def _role_names(cls, value: list[str]) -> list[str]:
        if not all(
            0 < len(r) <= _NAME_CHARS and re.match(PRINCIPAL_NAME_PATTERN, r) for r in value
        ):
            raise ValueError("a role is a name without spaces or colons")
        return value


class AddressBook:
    """The book as read; empty when STEPGATE_ADDRESS_BOOK is unset."""

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self._entries = entries or {}
        self._by_slack = {e.slack: p for p, e in self._entries.items() if e.slack}
        self._members: dict[str, list[str]] = {}
        for principal, entry in self._entries.items():
            for role in entry.roles:
                self._members.setdefault(role, []).append(principal)

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, principal: str) -> Entry | None:
        return self._entries.get(principal)

    def principal_for_slack(self, user_id: str) -> str | None:
        """The principal whose Slack user id this is; None for anyone the book does not list."""
        return self._by_slack.get(user_id)

    def members(self, role: str) -> list[str]:
        """The principals the book lists under `role` (the book's view, not the keys file's)."""
        return list(self._members.get(role, ()))

    def delegate_of(self, principal: str, now: datetime) -> str | None:
        """Whom `principal` delegates to at `now`, if anyone."""
        entry = self._entries.get(principal)
        if entry is None or entry.delegate is None or not entry.delegate.active(now):
            return None
        return entry.delegate.to

    def delegations_to(self, delegate: str, now: datetime) -> list[tuple[str, datetime]]:
        """(principal, until) for each principal who delegates to `delegate` at `now`."""
        return [
            (p, e.delegate.until)
            for p, e in self._entries.items()
            if e.delegate is not None and e.delegate.to == delegate and e.delegate.active(now)
        ]

    def quiet(self, principal: str, now: datetime) -> bool:
        """Whether `now` falls in the principal's quiet hours."""
        entry = self._entries.get(principal)
        return entry is not None and entry.quiet_hours is not None and entry.quiet_hours.holds(now)

    def quiet_until(self, principal: str, now: datetime) -> datetime | None:
        """When the principal's quiet hours that hold at `now` end; None when they are not quiet."""
        entry = self._entries.get(principal)
        if entry is None or entry.quiet_hours is None or not entry.quiet_hours.holds(now):
            return None
        return entry.quiet_hours.ends_after(now)

    def recipients(self, approvers: Iterable[str], now: datetime) -> list[str]:
        """Who a gate naming `approvers` (`user:P`, `role:R`) reaches personally: the users it
        names, the members the book lists for its roles, and the active delegates of those;
        each once, in that order, at most MAX_RECIPIENTS."""
        found: dict[str, None] = {}
        for approver in approvers:
            kind, _, name = approver.partition(":")
            if kind == "user" and name:
                found.setdefault(name)
            elif kind == "role":
                for member in self.members(name):
                    found.setdefault(member)
        for principal in list(found):
            delegate = self.delegate_of(principal, now)
            if delegate is not None:
                found.setdefault(delegate)
        return list(found)[:MAX_RECIPIENTS]


def _where(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors()[:5]
    )


def parse_book(data: Any, where: str) -> AddressBook:
    """The book from parsed YAML; ValueError naming the entry and field that are wrong."""
    if data is None:
        return AddressBook()
    if not isinstance(data, dict):
        raise ValueError(f"{BOOK_ENV}={where}: the book is a mapping of principal to entry")
    if len(data) > MAX_ENTRIES:
        raise ValueError(f"{BOOK_ENV}={where}: {len(data)} entries; at most {MAX_ENTRIES}")
    entries: dict[str, Entry] = {}
    slack: dict[str, str] = {}
    for principal, raw in data.items():
        if (
            not isinstance(principal, str)
            or not 0 < len(principal) <= _NAME_CHARS
            or not re.match(PRINCIPAL_NAME_PATTERN, principal)
        ):
            raise ValueError(
                f"{BOOK_ENV}={where}: a principal is a name without spaces or colons"
                f" (entry {str(principal)[:40]!r})"
            )
        try:
            entry = Entry.model_validate(raw if raw is not None else {})
        except ValidationError as err:
            raise ValueError(f"{BOOK_ENV}={where}: entry {principal!r}: {_where(err)}") from None
        if entry.delegate is not None and entry.delegate.to == principal:
            raise ValueError(f"{BOOK_ENV}={where}: entry {principal!r} delegates to itself")
        if entry.slack and entry.slack in slack:
            # Two principals behind one Slack user: a button press could not say who decides.
            raise ValueError(
                f"{BOOK_ENV}={where}: entries {slack[entry.slack]!r} and {principal!r} have "
                "the same Slack user id"
            )
        if entry.slack:
            slack[entry.slack] = principal
        entries[principal] = entry
    return AddressBook(entries)


def load_book(path: Path) -> AddressBook:
    """The book in `path` (bounded in size, like the keys file)."""
    return parse_book(read_document(path, BOOK_ENV), str(path))


_EMPTY = AddressBook()
_books: dict[Path, WatchedFile[AddressBook]] = {}
_lock = threading.Lock()


def address_book(settings: Settings, *, look: bool = True) -> AddressBook:
    """The current book for these settings (read again when the file changed; blocking then, so
    async callers run it in a thread when `book_due`). A bad file at first read raises
    ValueError naming the setting; a bad edit later keeps the last good book and logs. With
    `look` false a book already read is returned as it is in memory."""
    path = settings.stepgate_address_book
    if path is None:
        return _EMPTY
    with _lock:
        watched = _books.get(path)
        if watched is None:
            watched = WatchedFile(path, load_book, what="address book", kept="entries")
            _books[path] = watched
    return watched.current(look=look) or _EMPTY


def book_due(settings: Settings) -> bool:
    """Whether address_book(settings) would touch the file now (a first read, or the look at
    most once a second): an event loop then calls it in a thread."""
    path = settings.stepgate_address_book
    if path is None:
        return False
    watched = _books.get(path)
    return watched is None or watched.due()
