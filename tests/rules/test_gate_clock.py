"""A gate's clock: deadlines, escalation, and reminders with a cap and a backoff."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.rules.sim import T0, Sim
from workflows.models import AuditEntry
from workflows.rules.gates import ALARM_SUMMARY_CHARS, Notify, next_alarm, next_due, on_time
from workflows.rules.state import GateRecord

TIMED = """
name: t
steps:
  - id: a
    tool: t.x
    approval:
      approvers: ["role:ops"]
      %s
"""


@pytest.mark.parametrize(
    "on_timeout,state,outcome",
    [
        ("reject", "failed", "reject"),
        ("approve", "running", "approve"),
        ("skip", "skipped", "skip"),
        ("cancel", "cancelled", "cancel"),
    ],
)
def test_deadline_applies_on_timeout(on_timeout: str, state: str, outcome: str) -> None:
    """When the deadline passes the gate closes as on_timeout says, by the system's clock."""
    sim = Sim(
        TIMED
        % f"{{timeout: 1h, on_timeout: {on_timeout}}}".replace("{", "")
        .replace("}", "")
        .replace(", ", "\n      ")
    )
    sim.advance()
    assert next_due(sim.state) == T0 + timedelta(hours=1)
    sim.tick(minutes=59)
    assert sim.gate("a").open
    sim.tick(minutes=1)
    assert sim.gate("a").outcome == outcome and sim.gate("a").decided_by == ["system:timeout"]
    assert sim.step("a").state.value == state
    assert sim.state.audit[-1].kind in ("timeout", "lifecycle")
    assert next_due(sim.state) is None


def test_escalation_widens_the_approvers_then_rejects() -> None:
    """On timeout the gate escalates once (approvers grow, a new deadline), then rejects."""
    sim = Sim(
        TIMED
        % "timeout: 1h\n      on_timeout: escalate\n      escalate_to: ['role:lead']\n      escalation_timeout: 2h"
    )
    sim.advance()
    effects = sim.tick(hours=1)
    assert effects == [Notify("a", "a", "escalated")]
    g = sim.gate("a")
    assert g.open and g.escalated and g.approvers == ["role:ops", "role:lead"]
    assert g.deadline == T0 + timedelta(hours=3)
    assert sim.vote("a", "approve", actor="lee", roles=["lead"]) is None
    sim = Sim(TIMED % "timeout: 1h\n      on_timeout: escalate\n      escalate_to: ['role:lead']")
    sim.advance()
    sim.tick(hours=1)
    assert sim.gate("a").deadline == T0 + timedelta(hours=2)
    sim.tick(hours=1)
    assert sim.gate("a").outcome == "reject"


def test_reminders_back_off_and_stop_at_the_cap() -> None:
    """Reminders come after remind_after, each interval `remind_backoff` times the last, and stop
    after max_reminders."""
    sim = Sim(TIMED % "remind_after: 1m\n      max_reminders: 3\n      remind_backoff: 2")
    sim.advance()
    times = []
    for _ in range(10):
        due = next_due(sim.state)
        if due is None:
            break
        sim.now = due
        assert sim.advance() == [Notify("a", "a", "reminder")]
        times.append(int((due - T0).total_seconds() / 60))
    assert times == [1, 3, 7]
    assert sim.gate("a").reminders == 3 and sim.gate("a").next_reminder is None
    assert [e.reason for e in sim.state.audit] == [f"reminder {n} of at most 3" for n in (1, 2, 3)]


def test_a_month_of_one_minute_reminders_stays_bounded() -> None:
    """A gate with a 1-minute reminder and no timeout, left for 30 days, sends at most the cap of
    reminders and records each: the run's state and history stay small."""
    sim = Sim(TIMED % "remind_after: 1m")
    sim.advance()
    wakes = 0
    end = T0 + timedelta(days=30)
    while (due := next_due(sim.state)) is not None and due <= end:
        sim.now = due
        sim.advance()
        wakes += 1
    assert wakes == 5 and sim.gate("a").reminders == 5
    assert sim.state.audit_total == 5 and sim.gate("a").open


def test_reminders_stop_when_the_gate_is_decided() -> None:
    """A decided gate has no clock any more."""
    sim = Sim(TIMED % "remind_after: 1m\n      timeout: 1h")
    sim.advance()
    sim.vote("a", "approve")
    assert next_due(sim.state) is None


def test_next_due_is_the_earliest_of_deadlines_and_reminders() -> None:
    """The run wakes for whichever comes first, across gates."""
    sim = Sim(
        """
name: two
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"], timeout: 2h, remind_after: 30m}}
  - {id: b, tool: t.x, approval: {approvers: ["role:ops"], timeout: 20m, on_timeout: approve}}
"""
    )
    sim.advance()
    assert next_due(sim.state) == T0 + timedelta(minutes=20)
    sim.tick(minutes=20)
    assert next_due(sim.state) == T0 + timedelta(minutes=30)


def test_timeout_closes_the_gate_at_the_deadline_and_records_it() -> None:
    """At exactly its deadline the gate is decided by the timeout, then, with one audit entry."""
    sim = Sim(TIMED % "timeout: 1h\n      on_timeout: skip")
    sim.advance()
    sim.tick(hours=1)
    g = sim.gate("a")
    assert (g.outcome, g.decided_by, g.decided_at) == ("skip", ["system:timeout"], sim.now)
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=sim.now,
            kind="timeout",
            gate="a",
            action="skip",
            reason="gate deadline passed",
        )
    ]


def test_escalation_records_whom_it_reached_and_rejects_at_the_second_deadline() -> None:
    """Escalating names every new approver in the audit; the next deadline rejects the gate."""
    sim = Sim(
        TIMED
        % "timeout: 1h\n      on_timeout: escalate\n      escalate_to: ['role:lead', 'user:boss']"
    )
    sim.advance()
    sim.tick(hours=1)
    assert sim.gate("a").approvers == ["role:ops", "role:lead", "user:boss"]
    escalated_at = sim.now
    sim.tick(hours=1)
    assert sim.gate("a").outcome == "reject" and sim.gate("a").decided_at == sim.now
    assert sim.state.audit[:2] == [
        AuditEntry(
            seq=1,
            at=escalated_at,
            kind="escalation",
            gate="a",
            reason="escalated to role:lead, user:boss",
        ),
        AuditEntry(
            seq=2,
            at=sim.now,
            kind="timeout",
            gate="a",
            action="reject",
            reason="gate deadline passed",
        ),
    ]


def test_reminder_records_its_count_against_the_cap() -> None:
    """Each reminder leaves an audit entry naming the gate, its number and the cap."""
    sim = Sim(TIMED % "remind_after: 10m\n      max_reminders: 2")
    sim.advance()
    assert sim.tick(minutes=10) == [Notify("a", "a", "reminder")]
    assert sim.state.audit == [
        AuditEntry(seq=1, at=sim.now, kind="reminder", gate="a", reason="reminder 1 of at most 2")
    ]


def test_every_gate_due_at_once_is_served() -> None:
    """A reminder on one gate and an escalation on another, due together, both notify."""
    sim = Sim(
        """
name: two
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"], remind_after: 10m}}
  - id: b
    tool: t.x
    approval: {approvers: ["role:ops"], timeout: 10m, on_timeout: escalate, escalate_to: ["role:lead"]}
  - {id: c, tool: t.x, approval: {approvers: ["role:ops"], remind_after: 10m}}
"""
    )
    sim.advance()
    assert sim.tick(minutes=10) == [
        Notify("a", "a", "reminder"),
        Notify("b", "b", "escalated"),
        Notify("c", "c", "reminder"),
    ]


def test_a_gate_on_a_step_without_approval_is_left_alone() -> None:
    """The clock only acts on gates its definition declares, and still serves the later ones."""
    sim = Sim(
        """
name: two
steps:
  - {id: a, tool: t.x}
  - {id: b, tool: t.x, approval: {approvers: ["role:ops"], remind_after: 10m}}
"""
    )
    stray = GateRecord(
        gate="a",
        step="a",
        stage="before",
        round=0,
        digest="sha256:x",
        opened_at=T0,
        approvers=["role:ops"],
        deadline=T0,
        next_reminder=T0,
    )
    sim.state.steps["a"].gate = stray
    sim.advance()
    assert on_time(sim.state, sim.d, T0 + timedelta(minutes=10)) == [Notify("b", "b", "reminder")]
    assert stray.open and stray.reminders == 0


def test_open_gate_shows_the_subject_and_its_digest() -> None:
    """A gate opens on the step's resolved inputs with their pinned digest and no deadline
    unless one is set."""
    sim = Sim(
        "name: o\nsteps: [{id: a, tool: t.x, with: {amount: 10}, approval: {approvers: ['role:ops']}}]"
    )
    sim.advance()
    g = sim.gate("a")
    assert (g.subject, g.deadline, g.next_reminder, g.opened_at) == ({"amount": 10}, None, None, T0)
    assert g.digest == "sha256:a8b88b82fe90a16048eb8851fe382405395cd395dafaa7ca9be90ec00f82a72b"


def test_item_gates_remind_and_escalate_as_their_own_units() -> None:
    """A for_each item's gate reminds and escalates under its own id `<step>.<index>`, the unit
    the notification is sent for."""
    sim = Sim(
        """
name: e
input: {type: object, properties: {xs: {type: array}}}
steps:
  - id: w
    for_each: "${input.xs}"
    tool: t.x
    approval:
      approvers: ["role:ops"]
      remind_after: 10m
      timeout: 1h
      on_timeout: escalate
      escalate_to: ["role:lead"]
""",
        {"xs": [1, 2]},
    )
    sim.advance()
    assert sim.tick(minutes=10) == [
        Notify("w.0", "w.0", "reminder"),
        Notify("w.1", "w.1", "reminder"),
    ]
    escalated = [n for n in sim.tick(minutes=50) if n.event == "escalated"]
    assert escalated == [Notify("w.0", "w.0", "escalated"), Notify("w.1", "w.1", "escalated")]


def test_the_alarm_names_the_gate_its_deadline_and_who_may_decide() -> None:
    """The run's one timer says what it waits for, as the Web UI shows it: the gate, its
    deadline and its approvers, and which reminder comes first when one does."""
    sim = Sim(TIMED % "timeout: 2h\n      remind_after: 30m\n      max_reminders: 2")
    sim.advance()
    due = next_alarm(sim.state)
    assert due is not None and due.at == T0 + timedelta(minutes=30)
    deadline = (T0 + timedelta(hours=2)).isoformat(timespec="seconds")
    assert due.summary == f"gate a: reminder 1 due; deadline {deadline}; may decide: role:ops"
    sim.tick(minutes=30)
    sim.tick(minutes=60)
    due = next_alarm(sim.state)
    assert due is not None and due.at == T0 + timedelta(hours=2)
    assert due.summary == f"gate a: deadline {deadline}; may decide: role:ops"


def test_an_alarm_without_a_deadline_says_none_and_lists_every_approver() -> None:
    """A gate that only reminds: its timer says `deadline none` and names each approver,
    comma-separated."""
    sim = Sim(TIMED.replace('["role:ops"]', '["role:ops", "user:bo"]') % "remind_after: 30m")
    sim.advance()
    due = next_alarm(sim.state)
    assert due is not None and due.at == T0 + timedelta(minutes=30)
    assert due.summary == "gate a: reminder 1 due; deadline none; may decide: role:ops, user:bo"


def test_the_alarm_summary_stays_within_what_temporal_takes() -> None:
    """However many approvers a gate names, its timer's summary is cut to ALARM_SUMMARY_CHARS
    (Temporal refuses a summary over 400 bytes, failing the workflow task)."""
    many = ", ".join(f"'user:approver-{i:03d}'" for i in range(60))
    sim = Sim(TIMED.replace('["role:ops"]', f"[{many}]") % "timeout: 1h")
    sim.advance()
    due = next_alarm(sim.state)
    assert due is not None and len(due.summary) == ALARM_SUMMARY_CHARS
    assert due.summary.startswith("gate a: deadline ") and due.summary.endswith("…")
    assert len(json.dumps(due.summary).encode()) <= 400
