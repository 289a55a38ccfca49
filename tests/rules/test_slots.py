"""Parallel slots: a pass over many waiting units starts exactly what the run's and each
for_each step's limits allow, in order, counting again whenever a unit moves."""

from __future__ import annotations

from tests.rules.sim import Sim
from workflows.rules import lifecycle
from workflows.rules.scheduler import Invoke
from workflows.rules.state import Result

MANY = """
name: many
input: {type: object, properties: {n: {type: array}}}
%s
steps:
  - id: each
    for_each: "${input.n}"
    %s
    tool: t.x
    with: {i: "${index}"}
"""

TEN = {"n": list(range(10))}


def _started(effects: list[object]) -> list[str]:
    return [e.step for e in effects if isinstance(e, Invoke)]


def _running(sim: Sim) -> list[str]:
    return [u.id for u in sim.state.units() if u.phase == "running"]


def _returned(sim: Sim, *unit_ids: str) -> None:
    """Results for several units arrive before the next pass (one `advance` sees them all)."""
    for uid in unit_ids:
        lifecycle.record_result(
            sim.state, uid, Result(round=sim.step(uid).round, ok=True, output={}, attempts=1)
        )


def test_pass_over_many_items_starts_exactly_the_step_limit_in_order() -> None:
    """Ten waiting items under max_parallel 3: one pass starts items 0, 1, 2 and no other."""
    sim = Sim(MANY % ("", "max_parallel: 3"), TEN)
    assert _started(sim.advance()) == ["each.0", "each.1", "each.2"]
    assert _running(sim) == ["each.0", "each.1", "each.2"]
    assert [i.phase for i in sim.step("each").items or []][3:] == ["pending"] * 7


def test_pass_over_many_items_starts_exactly_the_run_limit_in_order() -> None:
    """Ten waiting items with no step limit under the run's max_parallel 4 start items 0 to 3."""
    sim = Sim(MANY % ("max_parallel: 4", ""), TEN)
    assert _started(sim.advance()) == ["each.0", "each.1", "each.2", "each.3"]


def test_smaller_of_run_and_step_limits_bounds_the_items() -> None:
    """The run's max_parallel 2 holds back items a step limit of 5 would allow, and vice versa."""
    assert _started(Sim(MANY % ("max_parallel: 2", "max_parallel: 5"), TEN).advance()) == [
        "each.0",
        "each.1",
    ]
    assert _started(Sim(MANY % ("max_parallel: 5", "max_parallel: 2"), TEN).advance()) == [
        "each.0",
        "each.1",
    ]


def test_item_returning_frees_exactly_one_slot_for_the_next_item() -> None:
    """When item 1 of three running returns, the pass starts item 3 and nothing more."""
    sim = Sim(MANY % ("", "max_parallel: 3"), TEN)
    sim.advance()
    assert _started(sim.succeed("each.1")) == ["each.3"]
    assert _running(sim) == ["each.0", "each.2", "each.3"]


def test_items_returning_together_free_their_slots_in_one_pass() -> None:
    """Two results seen by one pass start the next two waiting items, lowest index first."""
    sim = Sim(MANY % ("", "max_parallel: 3"), TEN)
    sim.advance()
    _returned(sim, "each.2", "each.0")
    assert _started(sim.advance()) == ["each.3", "each.4"]
    assert _running(sim) == ["each.1", "each.3", "each.4"]


GATED = MANY % ("", "max_parallel: 2\n    approval: {approvers: ['role:ops'], per_item: true}")


def test_items_waiting_at_a_gate_leave_their_slot_free() -> None:
    """Items gated before their call are not running, so every item's gate opens in one pass."""
    sim = Sim(GATED, {"n": [0, 1, 2]})
    sim.advance()
    assert _started(sim.effects) == []
    assert [i.phase for i in sim.step("each").items or []] == ["gate"] * 3
    sim.vote("each.0", "approve")
    sim.vote("each.1", "approve")
    assert _started(sim.effects) == ["each.0", "each.1"]


def test_approving_more_gated_items_than_the_limit_holds_the_extra_call() -> None:
    """A third approved item under max_parallel 2 waits for a slot instead of running."""
    sim = Sim(GATED, {"n": [0, 1, 2]})
    sim.advance()
    for uid in ("each.0", "each.1", "each.2"):
        sim.vote(uid, "approve")
    assert _running(sim) == ["each.0", "each.1"]
    assert sim.state.unit("each.2").phase == "queued"
    sim.succeed("each.0")
    assert _running(sim) == ["each.1", "each.2"]


def test_a_run_stopped_while_a_call_is_queued_ends_it_unreached() -> None:
    """A queued call never starts once the run fails: it ends cancelled, saying why, while the
    call already out is left to finish."""
    sim = Sim(GATED, {"n": [0, 1, 2]})
    sim.advance()
    for uid in ("each.0", "each.1", "each.2"):
        sim.vote(uid, "approve")
    sim.fail("each.0", "boom")
    queued = sim.state.unit("each.2")
    assert (queued.phase, queued.state.value, queued.reason) == ("done", "cancelled", "run stopped")
    assert _running(sim) == ["each.1"]


LATER_RETURN = """
name: later
max_parallel: 2
input: {type: object, properties: {n: {type: array}}}
steps:
  - id: each
    needs: [pre]
    for_each: "${input.n}"
    tool: t.x
  - {id: pre, tool: t.x}
  - {id: slow, tool: t.x}
"""


def test_unit_returning_later_in_the_pass_frees_a_slot_for_items_listed_before_it() -> None:
    """Items held back by the run limit start in the same advance when a step listed after them
    returns: the count is taken again once that step has moved."""
    sim = Sim(LATER_RETURN, {"n": [0, 1, 2, 3]})
    assert _started(sim.advance()) == ["pre", "slow"]
    assert _started(sim.succeed("pre")) == ["each.0"]
    # each.1 is counted against 2 running (each.0, slow) before slow's result is seen.
    assert _started(sim.succeed("slow")) == ["each.1"]
    assert _running(sim) == ["each.0", "each.1"]


TWO_EACH = """
name: two
max_parallel: 10
input: {type: object, properties: {n: {type: array}}}
steps:
  - {id: a, for_each: "${input.n}", max_parallel: 2, tool: t.x}
  - {id: b, for_each: "${input.n}", max_parallel: 1, tool: t.x}
"""


def test_each_step_counts_only_its_own_items_against_its_limit() -> None:
    """Two for_each steps with limits 2 and 1 start two items of the first and one of the second,
    however many the other has running."""
    sim = Sim(TWO_EACH, {"n": [0, 1, 2, 3]})
    assert _started(sim.advance()) == ["a.0", "a.1", "b.0"]
    assert _started(sim.succeed("b.0")) == ["b.1"]
    assert _started(sim.succeed("a.0")) == ["a.2"]


def test_run_limit_counts_items_of_every_step() -> None:
    """Items of two steps share the run's max_parallel: 3 slots go to a.0, a.1 then b.0."""
    sim = Sim(TWO_EACH.replace("max_parallel: 10", "max_parallel: 3"), {"n": [0, 1, 2, 3]})
    assert _started(sim.advance()) == ["a.0", "a.1", "b.0"]
    assert _started(sim.succeed("a.1")) == ["a.2"]
    assert _running(sim) == ["a.0", "a.2", "b.0"]
