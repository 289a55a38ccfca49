"""The address book (activities/address_book.py): who a gate reaches, quiet hours, delegates, and
every kind of bad file refused with where it is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from activities.access import MAX_FILE_BYTES
from activities.address_book import (
    MAX_ENTRIES,
    MAX_RECIPIENTS,
    AddressBook,
    QuietHours,
    address_book,
    load_book,
    parse_book,
)
from activities.config import Settings
from activities.watched import RELOAD_CHECK_S, WatchedFile
from tests.support.util import eventually

NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday, 13:00 in Berlin
BOOK: dict[str, Any] = {
    "alice": {
        "email": "alice@example.com",
        "slack": "U0ALICE",
        "webhook": "https://hooks.example.com/alice",
        "roles": ["ops"],
        "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
        "delegate": {"to": "bob", "from": "2030-01-06T00:00:00Z", "until": "2030-01-14T00:00:00"},
    },
    "bob": {"email": "bob@example.com", "slack": "U0BOB", "roles": ["ops", "sre"]},
    "carol": {"email": "carol@example.com", "roles": ["sre"]},
}


def book(data: Any = BOOK) -> AddressBook:
    return parse_book(data, "book.yaml")


def refusal(data: Any) -> str:
    with pytest.raises(ValueError) as err:
        parse_book(data, "book.yaml")
    assert "STEPGATE_ADDRESS_BOOK=book.yaml" in str(err.value)
    return str(err.value)


def test_recipients_are_users_role_members_and_active_delegates() -> None:
    """A gate naming alice and role sre reaches alice, sre's members and alice's delegate, each
    once; a role the book does not list reaches nobody."""
    assert book().recipients(["user:alice", "role:sre", "role:nobody"], NOW) == [
        "alice",
        "bob",
        "carol",
    ]
    assert book().recipients(["user:dave"], NOW) == ["dave"]
    assert book().recipients(["role:ops"], NOW) == ["alice", "bob"]


def test_delegate_counts_only_inside_its_window() -> None:
    """The delegate holds from `from` to `until` (a naive `until` read as UTC), not before or
    after."""
    b = book()
    assert b.delegate_of("alice", NOW) == "bob"
    assert b.delegations_to("bob", NOW) == [("alice", datetime(2030, 1, 14, tzinfo=UTC))]
    assert b.delegate_of("alice", datetime(2030, 1, 5, tzinfo=UTC)) is None
    after = datetime(2030, 1, 14, tzinfo=UTC) + timedelta(seconds=1)
    assert b.delegate_of("alice", after) is None and b.delegations_to("bob", after) == []
    assert b.recipients(["user:alice"], after) == ["alice"]


def test_quiet_hours_span_midnight_in_the_principals_zone() -> None:
    """22:00 to 07:00 Berlin time is quiet at 23:30 and 06:59 there, not at 07:00 or noon."""
    b = book()
    berlin = lambda h, m: datetime(2030, 1, 7, h, m, tzinfo=UTC) - timedelta(hours=1)  # noqa: E731
    assert b.quiet("alice", berlin(23, 30)) and b.quiet("alice", berlin(6, 59))
    assert not b.quiet("alice", berlin(7, 0)) and not b.quiet("alice", berlin(12, 0))
    assert not b.quiet("bob", berlin(23, 30)) and not b.quiet("nobody", berlin(23, 30))


def test_quiet_hours_end_at_their_next_end_in_the_principals_zone() -> None:
    """Quiet at 23:30 Berlin time: until 07:00 there the next morning (06:00 UTC in winter);
    at 06:59: until a minute later; not quiet (noon, bob, nobody): no end."""
    b = book()
    berlin = lambda d, h, m: datetime(2030, 1, d, h, m, tzinfo=UTC) - timedelta(hours=1)  # noqa: E731
    assert b.quiet_until("alice", berlin(7, 23, 30)) == datetime(2030, 1, 8, 6, 0, tzinfo=UTC)
    assert b.quiet_until("alice", berlin(8, 6, 59)) == datetime(2030, 1, 8, 6, 0, tzinfo=UTC)
    assert b.quiet_until("alice", berlin(7, 12, 0)) is None
    assert b.quiet_until("bob", berlin(7, 23, 30)) is None
    assert b.quiet_until("nobody", berlin(7, 23, 30)) is None


def test_quiet_hours_ending_at_a_clock_change() -> None:
    """An end of 02:30 Berlin time on the night clocks go forward (02:00 -> 03:00, 31 March
    2030) is 03:30 summer time (01:30 UTC); on the night they go back (27 October), 02:30 comes
    twice and the window ends at the second (01:30 UTC), not a day later."""
    hours = QuietHours(start="01:00", end="02:30", tz="Europe/Berlin")
    spring = datetime(2030, 3, 31, 0, 30, tzinfo=UTC)  # 01:30 winter time
    assert hours.holds(spring)
    assert hours.ends_after(spring) == datetime(2030, 3, 31, 1, 30, tzinfo=UTC)
    autumn = datetime(2030, 10, 27, 1, 0, tzinfo=UTC)  # 02:00 winter time, the second time round
    assert hours.holds(autumn)
    assert hours.ends_after(autumn) == datetime(2030, 10, 27, 1, 30, tzinfo=UTC)
    first = datetime(2030, 10, 27, 0, 0, tzinfo=UTC)  # 02:00 summer time
    assert hours.ends_after(first) == datetime(2030, 10, 27, 0, 30, tzinfo=UTC)


def test_slack_user_maps_to_one_principal() -> None:
    """A Slack user id maps to its principal; an unknown one to nobody."""
    assert book().principal_for_slack("U0BOB") == "bob"
    assert book().principal_for_slack("U0EVE") is None


def test_recipients_bounded() -> None:
    """A role with more members than a notification may address is cut at MAX_RECIPIENTS."""
    many = {f"p{i}": {"roles": ["all"]} for i in range(MAX_RECIPIENTS + 20)}
    assert len(book(many).recipients(["role:all"], NOW)) == MAX_RECIPIENTS


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (["alice"], "a mapping of principal to entry"),
        ({"alice": {"email": 3}}, "entry 'alice': email"),
        ({"alice": {"emial": "a@b.c"}}, "emial"),
        ({"alice": {"email": "a@b.c\r\nBcc: eve@evil.example"}}, "email"),
        ({"alice": {"slack": "not-an-id"}}, "slack"),
        ({"alice": {"webhook": "file:///etc/passwd"}}, "not an http(s) URL"),
        ({"alice": {"roles": "ops"}}, "roles"),
        ({"alice": {"roles": ["o p"]}}, "a role is a name"),
        ({"alice": {"quiet_hours": {"start": 1320, "end": "07:00"}}}, '"HH:MM" in quotes'),
        (
            {"alice": {"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Mars/Olympus"}}},
            "known time zone",
        ),
        (
            {
                "alice": {
                    "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "../../etc/passwd"}
                }
            },
            "time zone",
        ),
        ({"alice": {"quiet_hours": {"start": "22:00", "end": "22:00"}}}, "the same time"),
        ({"alice": {"delegate": {"to": "bob"}}}, "delegate.until"),
        ({"alice": {"delegate": {"to": "alice", "until": "2030-01-01"}}}, "delegates to itself"),
        (
            {"alice": {"delegate": {"to": "bob", "from": "2030-02-01", "until": "2030-01-01"}}},
            "not before",
        ),
        ({"a b": {}}, "a principal is a name"),
        ({"alice": {"slack": "U0X"}, "bob": {"slack": "U0X"}}, "the same Slack user id"),
        ({f"p{i}": {} for i in range(MAX_ENTRIES + 1)}, f"at most {MAX_ENTRIES}"),
    ],
)
def test_bad_book_refused_naming_entry_and_field(data: Any, says: str) -> None:
    """Wrong types, unknown keys, header injection, bad time zones, shared Slack ids and too many
    entries are refused, naming where; a webhook URL is never echoed."""
    message = refusal(data)
    assert says in message
    assert "file:///" not in message


def test_oversized_book_file_refused(tmp_path: Path) -> None:
    """A file larger than the bound is refused before it is parsed."""
    path = tmp_path / "book.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES)
    with pytest.raises(ValueError, match="larger than"):
        load_book(path)


class Clock:
    """A monotonic clock moved by hand, so the once-a-second look is not waited out."""

    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_bad_edit_keeps_last_good_book_and_logs(tmp_path: Path) -> None:
    """An edit that breaks the book leaves the last good one in use and logs where it is wrong;
    the next good edit is picked up."""
    path, clock = tmp_path / "book.yaml", Clock()
    path.write_text(yaml.safe_dump(BOOK))
    watched = WatchedFile(path, load_book, what="address book", kept="entries", clock=clock)
    path.write_text(yaml.safe_dump({"alice": {"quiet_hours": {"start": "x", "end": "y"}}}))
    clock.now += RELOAD_CHECK_S
    with structlog.testing.capture_logs() as logs:
        current = watched.current()
    assert current is not None and current.principal_for_slack("U0BOB") == "bob"
    (event,) = [e for e in logs if e["log_level"] == "error"]
    assert "keeping the entries read before" in event["event"] and "quiet_hours" in event["error"]
    path.write_text(yaml.safe_dump({"erin": {"slack": "U0ERIN"}}))
    clock.now += RELOAD_CHECK_S
    current = watched.current()
    assert current is not None and current.principal_for_slack("U0ERIN") == "erin"
    assert current.principal_for_slack("U0BOB") is None


async def test_address_book_rereads_on_change(tmp_path: Path) -> None:
    """address_book(settings) is empty when unset, reads the file, and sees an edit within
    about a second without a restart."""
    assert len(address_book(Settings(_env_file=None))) == 0  # type: ignore[call-arg]
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump({"alice": {"slack": "U0ALICE"}}))
    settings = Settings(stepgate_address_book=path, _env_file=None)  # type: ignore[call-arg]
    assert address_book(settings).principal_for_slack("U0ALICE") == "alice"
    path.write_text(yaml.safe_dump({"alice": {"slack": "U0ALICE2"}}))
    await eventually(
        lambda: address_book(settings).principal_for_slack("U0ALICE2"), within=10, what="reread"
    )


def test_address_book_bad_at_first_read_names_the_setting(tmp_path: Path) -> None:
    """A book that is broken when first read raises, naming the setting."""
    path = tmp_path / "bad.yaml"
    path.write_text("alice: {email: 3}\n")
    settings = Settings(stepgate_address_book=path, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="STEPGATE_ADDRESS_BOOK="):
        address_book(settings)
