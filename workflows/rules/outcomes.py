"""How a unit of work (a step, or one item of a for_each step) makes its call and how it ends:
the call's effect, its output, its final state, a failure that stops the run. The leaf of the
phase machine (units.py, unit_gates.py and loops.py build on it); pure."""

from __future__ import annotations

from typing import Any

from workflows.language.definition import StepSpec
from workflows.language.limits import (
    DEFAULT_INLINE_BYTES,
    MIN_INLINE_BYTES,
    MIN_PREVIEW_BYTES,
    PREVIEW_BYTES,
    RUN_INLINE_BYTES,
)
from workflows.names import StepState
from workflows.rules.state import StepRecord, Stop
from workflows.rules.turn import Invoke, Turn, step_of
from workflows.rules.votes import digest_of


def run(t: Turn, unit: StepRecord) -> None:
    """Make the unit's call (its tool, child pipeline or approved plan) with its arguments;
    a run that stopped meanwhile ends the unit instead."""
    if t.state.stop is not None:
        finish(t, unit, StepState.CANCELLED, reason="run stopped")
        return
    unit.phase = "running"
    unit.state = StepState.RUNNING
    plan = unit.plan.definition if unit.plan is not None else None
    inline, shown = _reserve(t, unit)
    t.effects.append(
        Invoke(
            unit.id,
            unit.round,
            unit.args or {},
            list(unit.slots),
            unit.iteration,
            plan,
            inline,
            shown,
        )
    )


def _reserve(t: Turn, unit: StepRecord) -> tuple[int, int]:
    """What the run can keep of this call, held for it until it returns: while the run's inline
    budget lasts, what the step allows (its `max_output_bytes`, else DEFAULT_INLINE_BYTES) and
    a PREVIEW_BYTES preview; then MIN_INLINE_BYTES and MIN_PREVIEW_BYTES."""
    state = t.state
    room = RUN_INLINE_BYTES - state.inline_bytes - state.reserved_bytes
    inline = t.d.step(step_of(unit)).max_output_bytes or DEFAULT_INLINE_BYTES
    shown = PREVIEW_BYTES
    if room < inline + shown:
        inline, shown = MIN_INLINE_BYTES, MIN_PREVIEW_BYTES
    unit.reserved = inline + shown
    state.reserved_bytes += unit.reserved
    return inline, shown


def settle(t: Turn, unit: StepRecord, size: int) -> None:
    """A call came back (or was never made): its reservation is freed and what its result
    keeps in the state is counted."""
    t.state.reserved_bytes -= unit.reserved
    t.state.inline_bytes += size
    unit.reserved, unit.kept = 0, size


def set_output(
    unit: StepRecord, output: Any, preview: str | None, artifact: dict[str, Any] | None
) -> None:
    unit.output = output
    unit.has_output = True
    unit.artifact = artifact
    unit.preview = preview


def finish(
    t: Turn,
    unit: StepRecord,
    final: StepState,
    *,
    reason: str | None = None,
    error: str | None = None,
) -> None:
    unit.state = final
    unit.phase = "done"
    unit.ended_at = t.now
    unit.next_at = None
    if reason is not None:
        unit.reason = reason
    if error is not None:
        unit.error = error
    if final == StepState.SUCCEEDED:
        t.state.seq += 1
        unit.completed_seq = t.state.seq


def fail(t: Turn, spec: StepSpec, unit: StepRecord, error: str) -> None:
    """The unit failed; unless the step goes on after errors, the run stops failed."""
    finish(t, unit, StepState.FAILED, error=error)
    if spec.on_error == "fail" and t.state.stop is None:
        what = (
            f"step {spec.id!r}" if unit.index is None else f"item {unit.index} of step {spec.id!r}"
        )
        t.state.stop = Stop(kind="failed", message=f"{what} failed: {error}")


def plan_digest(definition: dict[str, Any] | None) -> str | None:
    return digest_of(definition) if definition is not None else None
