"""A run's inline budget holds in sum: each call out holds what it may bring back, and once the
run keeps RUN_INLINE_BYTES of outputs and previews, calls bring back only small ones (larger
outputs go to the artifact store), so the state stays small enough to continue as new."""

from __future__ import annotations

import pytest

from tests.rules.sim import Sim
from workflows.language.limits import (
    DEFAULT_INLINE_BYTES,
    MIN_INLINE_BYTES,
    MIN_PREVIEW_BYTES,
    PREVIEW_BYTES,
    RUN_INLINE_BYTES,
)
from workflows.rules import lifecycle
from workflows.rules.scheduler import Invoke
from workflows.rules.state import Result, RunData, StepRecord

EACH = """
name: each
input: {type: object, properties: {n: {type: array}}}
steps:
  - id: each
    for_each: "${input.n}"
    tool: t.x
    with: {v: "${item}"}
"""

STEPS = """
name: two
steps:
  - {id: big, tool: t.x, max_output_bytes: 1000000}
  - {id: after, tool: t.x, needs: [big]}
"""


def invokes(sim: Sim) -> dict[str, Invoke]:
    return {e.step: e for e in sim.effects if isinstance(e, Invoke)}


def back(sim: Sim, unit: str, size: int) -> None:
    step = sim.step(unit)
    lifecycle.record_result(
        sim.state, unit, Result(round=step.round, ok=True, output={"n": 1}, size=size)
    )


def test_calls_out_hold_their_share_and_get_small_limits_once_it_is_spent() -> None:
    """Each call out holds its output limit and a preview; when what is left of the budget
    cannot hold another, later calls may keep only MIN_INLINE_BYTES and MIN_PREVIEW_BYTES."""
    per = DEFAULT_INLINE_BYTES + PREVIEW_BYTES
    fits = RUN_INLINE_BYTES // per
    sim = Sim(EACH, {"n": list(range(fits + 3))})
    sim.advance()
    calls = invokes(sim)
    full = [c for c in calls.values() if c.inline_bytes == DEFAULT_INLINE_BYTES]
    small = [c for c in calls.values() if c.inline_bytes == MIN_INLINE_BYTES]
    assert len(full) == fits and len(small) == 3
    assert {c.preview_bytes for c in full} == {PREVIEW_BYTES}
    assert {c.preview_bytes for c in small} == {MIN_PREVIEW_BYTES}
    assert sim.state.reserved_bytes == fits * per + 3 * (MIN_INLINE_BYTES + MIN_PREVIEW_BYTES)
    assert sim.state.reserved_bytes <= RUN_INLINE_BYTES


def test_a_call_back_frees_its_hold_and_counts_what_it_keeps() -> None:
    """A result frees its call's hold and adds its size; a failure keeps nothing."""
    sim = Sim(EACH, {"n": [1, 2]})
    sim.advance()
    back(sim, "each.0", 300)
    lifecycle.record_result(sim.state, "each.1", Result(round=0, ok=False, error="x", size=0))
    sim.advance()
    assert sim.state.reserved_bytes == 0
    assert sim.step("each.0").kept == 300 and sim.step("each.1").kept == 0
    # The gathered list holds the items' outputs once more.
    assert sim.state.inline_bytes == 300 + 300


def test_a_step_asking_for_more_than_the_budget_left_gets_the_small_limit() -> None:
    """A step's own `max_output_bytes` is what it may keep while the budget holds it; the next
    step, once the first kept most of the budget, may keep only the small limit."""
    sim = Sim(STEPS)
    sim.advance()
    assert invokes(sim)["big"].inline_bytes == 1_000_000
    assert sim.state.reserved_bytes == 1_000_000 + PREVIEW_BYTES
    back(sim, "big", 1_000_000)
    sim.advance()
    assert invokes(sim)["after"].inline_bytes == MIN_INLINE_BYTES
    assert sim.state.inline_bytes == 1_000_000


def test_a_call_the_stop_takes_back_frees_its_hold() -> None:
    """A call asked for in the pass that stops the run is never made, and holds nothing."""
    sim = Sim(
        """
name: stop
steps:
  - {id: a, tool: t.x}
  - {id: b, tool: t.x, needs: [a]}
  - {id: c, tool: t.x}
"""
    )
    sim.advance()
    back(sim, "a", 10)
    lifecycle.record_result(sim.state, "c", Result(round=0, ok=False, error="boom"))
    sim.advance()
    assert sim.step("b").state.value == "cancelled"
    assert sim.state.reserved_bytes == 0 and sim.state.inline_bytes == 10


def test_a_pass_over_many_items_counts_the_running_units_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Starting a thousand gated items walks the run's units a bounded number of times, not
    once per item (counting after every move made a pass quadratic: 3,000 gated items took
    longer than Temporal's deadlock detector allows)."""
    sim = Sim(
        EACH.replace(
            'with: {v: "${item}"}', 'with: {v: "${item}"}\n    approval: {approvers: ["role:ops"]}'
        ),
        {"n": list(range(1_000))},
    )
    walks = 0
    units = RunData.units

    def counted(self: RunData) -> list[StepRecord]:
        nonlocal walks
        walks += 1
        return units(self)

    monkeypatch.setattr(RunData, "units", counted)
    sim.advance()
    assert sum(u.gate is not None and u.gate.open for u in units(sim.state)) == 1_000
    assert walks <= 10, walks
