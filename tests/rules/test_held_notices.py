"""What quiet hours held: a notification's held principals kept on the gate, and told alone once
the first of their quiet hours ends, if the gate still waits then."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.sim import T0, Sim
from workflows.rules import notices
from workflows.rules.bounds import APPROVERS
from workflows.rules.gates import Notify, next_alarm
from workflows.rules.notices import MAX_HOLD

GATED = """
name: pay
steps:
  - id: a
    tool: t.x
    approval:
      approvers: ["role:ops"]
      timeout: 8h
      %s
"""
SOON = T0 + timedelta(minutes=30)


def opened(extra: str = "") -> Sim:
    sim = Sim(GATED % extra)
    sim.advance()
    return sim


def held(effects: list[object]) -> list[object]:
    return [e for e in effects if isinstance(e, Notify) and e.event == "held"]


def test_who_was_held_and_until_when_is_read_from_a_notice_result_only() -> None:
    """A NoticeResult's held principals and the end of their quiet hours; nobody from any other
    output (none, a list, a malformed time, a time without a zone)."""
    out = {"posts": [], "held": ["carol"], "held_until": SOON.isoformat(), "sent": 1}
    assert notices.held_of(out) == (["carol"], SOON)
    assert notices.held_of({"held": ["carol"]}) == (["carol"], None)
    naive = {"held": ["carol"], "held_until": "2030-01-07T12:00:00"}  # no zone: no moment
    for other in (None, [1], {"held": "carol"}, {"held": [], "held_until": "soon"}, naive):
        assert notices.held_of(other) == ([], None)


def test_held_principals_are_kept_once_each_with_the_earliest_end() -> None:
    """Two notifications held carol and dave: each is kept once, and the earlier end of their
    quiet hours is when the run's clock next needs it, its timer naming them."""
    sim = opened()
    notices.keep_held(sim.state, "a", 0, ["carol"], SOON + timedelta(hours=1), T0)
    notices.keep_held(sim.state, "a", 0, ["dave", "carol"], SOON, T0)
    gate = sim.gate("a")
    assert gate.held == ["carol", "dave"] and gate.held_until == SOON
    due = next_alarm(sim.state)
    assert due is not None and due.at == SOON
    assert due.summary == "gate a: quiet hours end for carol, dave"
    notices.keep_held(sim.state, "a", 0, ["erin"], SOON + timedelta(hours=2), T0)
    assert gate.held == ["carol", "dave", "erin"] and gate.held_until == SOON


def test_at_most_approvers_principals_are_kept() -> None:
    """A role of many members held: the first APPROVERS of them are kept."""
    sim = opened()
    many = [f"p{i}" for i in range(APPROVERS + 5)]
    notices.keep_held(sim.state, "a", 0, many, SOON, T0)
    assert sim.gate("a").held == many[:APPROVERS]


def test_nothing_is_kept_for_a_gate_closed_moved_on_or_unknown() -> None:
    """A hold reported after the gate was decided, for an earlier round, for a gate the run
    does not have, or naming nobody is dropped."""
    sim = opened()
    notices.keep_held(sim.state, "a", 1, ["carol"], SOON, T0)
    notices.keep_held(sim.state, "z", 0, ["carol"], SOON, T0)
    notices.keep_held(sim.state, "a", 0, [], SOON, T0)
    assert sim.gate("a").held == [] and sim.gate("a").held_until is None
    sim.vote("a", "approve")
    notices.keep_held(sim.state, "a", 0, ["carol"], SOON, T0)
    assert sim.gate("a").held == [] and sim.gate("a").held_until is None


def test_an_end_not_after_now_or_past_max_hold_is_dropped() -> None:
    """No end, an end at or before now (nothing to wait for) and one further than MAX_HOLD
    ahead (no daily window lasts that long) keep nothing; MAX_HOLD ahead exactly is kept."""
    sim = opened()
    for until in (None, T0, T0 - timedelta(seconds=1), T0 + MAX_HOLD + timedelta(seconds=1)):
        notices.keep_held(sim.state, "a", 0, ["carol"], until, T0)
        assert sim.gate("a").held_until is None
    notices.keep_held(sim.state, "a", 0, ["carol"], T0 + MAX_HOLD, T0)
    assert sim.gate("a").held_until == T0 + MAX_HOLD


def test_the_held_are_told_alone_once_their_quiet_hours_end() -> None:
    """A second before the end nothing is sent; at it, one `held` notice naming carol, then
    nothing more; the gate forgets the hold and counts each delivery (its own key)."""
    sim = opened()
    notices.keep_held(sim.state, "a", 0, ["carol"], SOON, T0)
    assert held(sim.tick(minutes=30, seconds=-1)) == []
    assert held(sim.tick(seconds=1)) == [Notify("a", "a", "held", ("carol",))]
    gate = sim.gate("a")
    assert gate.held == [] and gate.held_until is None and gate.held_told == 1
    assert held(sim.tick(hours=1)) == []
    due = next_alarm(sim.state)
    assert due is not None and due.at == gate.deadline
    notices.keep_held(sim.state, "a", 0, ["dave"], sim.now + timedelta(minutes=5), sim.now)
    assert held(sim.tick(minutes=5)) == [Notify("a", "a", "held", ("dave",))]
    assert gate.held_told == 2


def test_a_reminder_in_the_same_pass_tells_everyone_instead() -> None:
    """The reminder falls due when the hold ends: it reaches everyone, carol too, so no held
    notice is sent as well and the hold is forgotten."""
    sim = opened("remind_after: 30m")
    notices.keep_held(sim.state, "a", 0, ["carol"], SOON, T0)
    effects = sim.tick(minutes=30)
    assert [e for e in effects if isinstance(e, Notify)] == [Notify("a", "a", "reminder")]
    gate = sim.gate("a")
    assert gate.held == [] and gate.held_until is None and gate.held_told == 0


def test_an_escalation_in_the_same_pass_tells_everyone_instead() -> None:
    """The deadline escalates the gate when the hold ends: the escalation goes to everyone."""
    sim = opened('on_timeout: escalate\n      escalate_to: ["role:sre"]')
    notices.keep_held(sim.state, "a", 0, ["carol"], T0 + timedelta(hours=8), T0)
    effects = sim.tick(hours=8)
    assert [e for e in effects if isinstance(e, Notify)] == [Notify("a", "a", "escalated")]
    assert sim.gate("a").held_until is None


def test_a_gate_decided_before_the_end_tells_nobody_then() -> None:
    """Decided while carol's hours last: no held notice, and no alarm for it."""
    sim = opened()
    notices.keep_held(sim.state, "a", 0, ["carol"], SOON, T0)
    sim.vote("a", "approve")
    assert next_alarm(sim.state) is None
    assert held(sim.tick(hours=1)) == []


def test_the_held_notice_names_whom_to_tell_and_reads_as_an_opening() -> None:
    """The notice of a held delivery says `opened` (the gate still waits) and lists carol alone
    in `only`; any other notice names nobody there."""
    sim = opened()
    spec = sim.d.step("a").approval
    assert spec is not None
    notice = notices.gate_notice(sim.gate("a"), spec, sim.d, "wf-1", "held", ("carol",))
    assert notice.event == "opened" and notice.only == ["carol"]
    assert notices.gate_notice(sim.gate("a"), spec, sim.d, "wf-1", "reminder").only == []
