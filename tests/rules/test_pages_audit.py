"""The `audit` query: a page of the audit trail after a sequence number, each entry within the
page's bounds, named archives for what the state no longer keeps, and a cursor to the next page."""

from __future__ import annotations

from tests.rules.sim import T0, Sim
from workflows.models import AuditArchiveRef, AuditEntry
from workflows.rules import pages
from workflows.rules.bounds import BRIEF, PAGE, PAGE_BYTES, size


def _trail(n: int, **fields: object) -> Sim:
    """A run whose audit trail holds `n` entries with `fields`, numbered from 1."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    for k in range(n):
        sim.state.record(AuditEntry(at=T0, kind="reminder", reason=str(k), **fields))
    return sim


def test_entry_view_clips_texts_to_the_bounds_and_lists_at_most_ten_roles() -> None:
    """Actor, comment and reason are cut to the bounds' text length with an ellipsis, and only
    the first ten roles are listed; the rest of the entry is as recorded."""
    long = "y" * 5_000
    entry = AuditEntry(
        seq=3,
        at=T0,
        kind="decision",
        gate="g",
        actor=long,
        roles=[f"r{k}" for k in range(15)],
        comment=long,
        reason=long,
        action="approve",
        outcome="accepted",
    )
    got = pages.entry_view(entry, PAGE)
    assert got.actor == "y" * 3_999 + "…"
    assert got.comment == got.reason == got.actor
    assert got.roles == [f"r{k}" for k in range(10)]
    assert (got.seq, got.gate, got.action, got.outcome) == (3, "g", "approve", "accepted")
    brief = pages.entry_view(entry, BRIEF)
    assert brief.actor == brief.comment == brief.reason == "y" * 199 + "…"


def test_entry_view_keeps_short_texts_and_absent_ones_as_they_are() -> None:
    """Texts within the bounds are shown unchanged, and missing ones stay missing."""
    entry = AuditEntry(at=T0, kind="decision", actor="alice", comment="ok", roles=["ops"])
    got = pages.entry_view(entry, PAGE)
    assert (got.actor, got.comment, got.reason, got.roles) == ("alice", "ok", None, ["ops"])


def test_entry_view_shows_a_patch_within_the_bounds_and_marks_a_larger_one_left_out() -> None:
    """A patch whose JSON fits the bounds' value size is shown whole and not marked; a larger one
    is left out and marked, and an entry already marked stays marked."""
    patch = {"p": "z" * 10_000}
    entry = AuditEntry(at=T0, kind="decision", patch=patch)
    whole = pages.entry_view(entry, PAGE)
    assert whole.patch == patch and whole.patch_truncated is False
    cut = pages.entry_view(entry, BRIEF)
    assert cut.patch is None and cut.patch_truncated is True
    marked = AuditEntry(at=T0, kind="decision", patch_truncated=True)
    assert pages.entry_view(marked, PAGE).patch_truncated is True
    assert pages.entry_view(AuditEntry(at=T0, kind="decision"), PAGE).patch_truncated is False


def test_audit_page_starts_after_the_sequence_number_and_counts_the_whole_trail() -> None:
    """Entries come in order from the one after `after`, at most `limit`; the total is the
    whole trail's, and the next page's `after` is the last number shown."""
    sim = _trail(5)
    first = pages.audit_page(sim.state, 0, 2)
    assert [e.seq for e in first.entries] == [1, 2] and first.next_after == 2
    assert first.total == 5
    mid = pages.audit_page(sim.state, 2, 2)
    assert [e.seq for e in mid.entries] == [3, 4] and mid.next_after == 4
    last = pages.audit_page(sim.state, 4, 2)
    assert [e.seq for e in last.entries] == [5] and last.next_after is None
    whole = pages.audit_page(sim.state, 0, 5)
    assert [e.seq for e in whole.entries] == [1, 2, 3, 4, 5] and whole.next_after is None
    past = pages.audit_page(sim.state, 5, 10)
    assert past.entries == [] and past.next_after is None and past.total == 5


def test_audit_page_names_the_archives_that_hold_entries_after_the_cursor() -> None:
    """Archived chunks whose last entry is after `after` are named; those wholly at or before it
    are not."""
    sim = _trail(9)
    chunks = [
        AuditArchiveRef(first_seq=1, last_seq=3, path="a1", sha256="h1"),
        AuditArchiveRef(first_seq=4, last_seq=6, path="a2", sha256="h2", prev_sha256="h1"),
    ]
    sim.state.archives = chunks
    del sim.state.audit[:6]
    assert pages.audit_page(sim.state, 0, 10).archived == chunks
    assert pages.audit_page(sim.state, 2, 10).archived == chunks
    assert pages.audit_page(sim.state, 3, 10).archived == chunks[1:]
    assert pages.audit_page(sim.state, 5, 10).archived == chunks[1:]
    assert pages.audit_page(sim.state, 6, 10).archived == []
    kept = pages.audit_page(sim.state, 0, 10)
    assert [e.seq for e in kept.entries] == [7, 8, 9] and kept.total == 9


def test_page_of_leaves_entries_without_a_number_out() -> None:
    """An entry not yet numbered is never listed, even from the start of the trail."""
    entries = [AuditEntry(at=T0, kind="reminder"), AuditEntry(seq=1, at=T0, kind="reminder")]
    got = pages.page_of(entries, 1, 0, 10)
    assert [e.seq for e in got.entries] == [1] and got.next_after is None


def test_page_of_fills_a_page_with_whole_entries_up_to_its_bytes() -> None:
    """Entries whose patches are large fill a page up to PAGE_BYTES with each patch whole; the
    next entry waits for the next page rather than lose its patch."""
    sim = _trail(30, patch={"p": "x" * 60_000})
    got = pages.page_of(sim.state.audit, 30, 0, 500)
    assert 1 < len(got.entries) < 30 and got.next_after == got.entries[-1].seq
    assert all(e.patch is not None and not e.patch_truncated for e in got.entries)
    assert size(got) <= PAGE_BYTES


def test_page_of_shows_an_entry_too_large_for_a_page_alone_so_the_walk_moves_on() -> None:
    """An entry whose briefest form is over a page's bytes (a gate id of megabytes) is still
    shown, alone on its page, and the next page starts after it."""
    sim = _trail(3)
    sim.state.audit[0].gate = "g" * (PAGE_BYTES + 10)
    first = pages.audit_page(sim.state, 0, 500)
    assert [e.seq for e in first.entries] == [1] and first.next_after == 1
    rest = pages.audit_page(sim.state, 1, 500)
    assert [e.seq for e in rest.entries] == [2, 3] and rest.next_after is None
