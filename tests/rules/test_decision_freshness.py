"""`decision_valid_for`: an approval older than that when its step's call would start is void,
and the gate opens again as a new round; the option is validated like the other durations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.rules.sim import Sim
from workflows.language.definition import ApprovalSpec
from workflows.rules.gates import Notify
from workflows.rules.scheduler import Invoke

# `work` opens its gate, then `slow` takes the run's one slot: `work`, once approved, waits.
QUEUED = """
name: fresh
max_parallel: 1
steps:
  - id: work
    tool: t.y
    with: {n: 1}
    approval: {approvers: ["role:ops"], decision_valid_for: 10m%s}
  - id: slow
    tool: t.x
"""


def queued(extra: str = "", **vote: str) -> Sim:
    sim = Sim(QUEUED % extra)
    sim.advance()
    assert sim.vote("work", "approve", **vote) is None
    assert sim.step("work").phase == "queued"
    return sim


def test_an_approval_within_its_validity_starts_the_call() -> None:
    """Approved ten minutes before the slot frees, exactly at the bound, the call starts."""
    sim = queued()
    sim.tick(minutes=10)
    effects = sim.succeed("slow")
    assert [e.step for e in effects if isinstance(e, Invoke)] == ["work"]
    assert [a.kind for a in sim.state.audit].count("void") == 0


def test_an_approval_too_old_when_the_call_would_start_is_void() -> None:
    """A moment past the bound the approval is void: no call, the gate opens again as round 1
    on what it showed, its votes left behind, the audit says why, the approvers are told."""
    sim = queued()
    old = sim.gate("work")
    sim.tick(minutes=10, seconds=1)
    effects = sim.succeed("slow")
    assert not [e for e in effects if isinstance(e, Invoke)]
    gate, unit = sim.gate("work"), sim.step("work")
    assert (unit.phase, unit.state.value, unit.round) == ("gate", "waiting", 1)
    assert (gate.round, gate.open, gate.votes, gate.subject) == (1, True, [], {"n": 1})
    assert old.outcome == "approve" and len(old.votes) == 1
    assert [e for e in effects if isinstance(e, Notify)] == [Notify("work", "work", "opened")]
    void = sim.state.audit[-1]
    assert (void.kind, void.gate, void.action) == ("void", "work", "approve")
    assert void.reason == (
        "the approve of 2026-01-01T00:00:00+00:00 is 601s old when the step would start, past "
        "decision_valid_for 10m: the gate opens again (round 1)"
    )


def test_a_void_gate_opens_the_round_after_the_units_own() -> None:
    """A unit already in a later round (as after a retry) whose approval is void opens the next
    round, not round 1."""
    sim = queued()
    sim.step("work").round = 3
    sim.tick(minutes=10, seconds=1)
    sim.succeed("slow")
    assert (sim.step("work").round, sim.gate("work").round, sim.gate("work").open) == (4, 4, True)


def test_a_fresh_approval_of_the_new_round_starts_the_call() -> None:
    """Approved again, the call starts at once (with the new round) while the slot is free."""
    sim = queued()
    sim.tick(hours=1)
    sim.succeed("slow")
    assert sim.vote("work", "approve") is None
    assert next(e for e in sim.effects if isinstance(e, Invoke) and e.step == "work").round == 1


def test_a_modify_too_old_is_void_and_the_amended_subject_stays() -> None:
    """A modify counts as an approval: too old, the gate opens again on the amended subject."""
    sim = Sim(QUEUED % "")
    sim.advance()
    assert sim.vote("work", "modify", patch={"n": 2}) is None
    sim.tick(hours=1)
    sim.succeed("slow")
    assert sim.gate("work").round == 1 and sim.gate("work").subject == {"n": 2}


def test_without_the_option_an_old_approval_still_starts_the_call() -> None:
    """No `decision_valid_for`: however old the approval, the call starts."""
    sim = Sim((QUEUED % "").replace(", decision_valid_for: 10m", ""))
    sim.advance()
    sim.vote("work", "approve")
    sim.tick(days=3)
    effects = sim.succeed("slow")
    assert [e.step for e in effects if isinstance(e, Invoke)] == ["work"]


def test_a_stopped_run_voids_nothing() -> None:
    """A run that stopped ends the queued unit instead of reopening its gate."""
    sim = queued()
    sim.tick(hours=1)
    sim.fail("slow")
    work = sim.step("work")
    assert (work.phase, work.state.value, work.round) == ("done", "cancelled", 0)
    assert "void" not in [a.kind for a in sim.state.audit]


def test_an_auto_approved_gate_opens_again_and_approves_itself() -> None:
    """In auto mode the new round approves itself at once, fresh, and the call starts."""
    sim = Sim(QUEUED % "", approval_mode="auto")
    sim.advance()
    assert sim.step("work").phase == "queued"
    sim.tick(hours=1)
    effects = sim.succeed("slow")
    assert [e.step for e in effects if isinstance(e, Invoke)] == ["work"]
    assert sim.step("work").round == 1 and "void" in [a.kind for a in sim.state.audit]


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"decision_valid_for": "soon"}, "bad duration 'soon'"),
        ({"decision_valid_for": "0ms"}, "must be at least 1ms"),
        (
            {"decision_valid_for": "1h", "stage": "after"},
            "decision_valid_for: only at stage before",
        ),
        ({"decision_valid_for": "1h", "per_item": False}, "not with per_item: false"),
    ],
)
def test_decision_valid_for_is_validated(extra: dict[str, object], why: str) -> None:
    """A malformed or out-of-bounds duration, another stage, or one gate over a whole list is
    refused, saying which."""
    with pytest.raises(ValidationError, match=why):
        ApprovalSpec.model_validate({"approvers": ["role:ops"], **extra})
    assert (
        ApprovalSpec.model_validate(
            {"approvers": ["role:ops"], "decision_valid_for": "1h"}
        ).decision_valid_for
        == "1h"
    )
