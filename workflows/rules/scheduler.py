"""What a run does next, derived from its state until nothing changes.

`advance` starts every step whose needs are done (in any listing order), skips what cannot run,
moves each unit of work (a step, or an item of a for_each step) on as its results and gates come
in (workflows/rules/units.py), acts on the gates' clocks, and winds the run down once it stops. It
returns the effects the workflow shell must carry out; it never waits, reads a clock or does I/O.
"""

from __future__ import annotations

from datetime import datetime

from workflows.language.definition import Definition, StepSpec
from workflows.language.limits import MAX_IN_FLIGHT
from workflows.names import StepState
from workflows.rules import agent
from workflows.rules.gates import Notify, on_time
from workflows.rules.notices import decided_notices
from workflows.rules.outcomes import settle
from workflows.rules.state import GateRecord, RunData, StepRecord, Stop
from workflows.rules.turn import CALLS, AskModel, CallTool, CheckCalls, LoadList, StoreTranscript
from workflows.rules.unit_gates import void_if_stale
from workflows.rules.units import (
    CheckPlan,
    Effect,
    Invoke,
    RunContext,
    Turn,
    decided,
    finish,
    gather,
    listed,
    next_iteration,
    planned,
    returned,
    run,
    start,
    start_each,
)
from workflows.rules.votes import SYSTEM_ACTOR, close

__all__ = [
    "CheckPlan",
    "Effect",
    "Invoke",
    "LoadList",
    "Notify",
    "RunContext",
    "advance",
    "finished",
    "next_wake",
]


def advance(
    state: RunData, d: Definition, ctx: RunContext, now: datetime, *, hold: bool = False
) -> list[Effect]:
    """Move the run as far as its state allows; the effects to carry out, in order. `hold`: start
    no new unit (the run is about to continue as new and waits for what is out)."""
    t = Turn(state, d, ctx, now, hold=hold)
    t.effects.extend(on_time(state, d, now))
    moved = True
    while moved:
        moved = False
        for spec in d.steps:
            moved |= _move_step(t, spec)
    if state.stop is not None:
        _wind_down(t, state.stop)
    t.effects.extend(decided_notices(state))
    return t.effects


def finished(state: RunData) -> bool:
    """Every step has reached a final state."""
    return all(s.phase == "done" for s in state.steps.values())


def next_wake(state: RunData) -> datetime | None:
    """When a repeat step sleeping between iterations is due."""
    times = [u.next_at for u in state.units() if u.phase == "sleeping" and u.next_at is not None]
    return min(times, default=None)


def _move_step(t: Turn, spec: StepSpec) -> bool:
    unit = t.state.steps[spec.id]
    if unit.phase == "pending":
        return _start_step(t, spec, unit)
    if unit.phase != "items":
        return _move_unit(t, spec, unit, None)
    moved = False
    for item in unit.items or []:
        moved |= _move_unit(t, spec, item, unit)
    if all(i.phase == "done" for i in unit.items or []):
        gather(t, spec, unit)
        t.counts.clear()
        moved = True
    return moved


def _move_unit(t: Turn, spec: StepSpec, unit: StepRecord, parent: StepRecord | None) -> bool:
    was_running = unit.phase == "running"
    if unit.phase == "pending":
        if not _may_start(t, spec, parent):
            return False
        start(t, spec, unit)
    elif unit.phase == "queued":
        # A decided call goes on while paused (pause holds new starts, not decisions), but
        # only within max_parallel.
        if not _has_room(t, spec, parent):
            return False
        if t.state.stop is not None or not void_if_stale(t, spec, unit):
            run(t, unit)
    elif unit.phase == "running" and unit.result is not None:
        returned(t, spec, unit, unit.result)
    elif unit.phase == "gate" and unit.gate is not None and unit.gate.outcome is not None:
        decided(t, spec, unit, unit.gate, unit.gate.outcome)
    elif unit.phase == "planning" and unit.plan is not None:
        planned(t, spec, unit, unit.plan)
    elif unit.phase == "loading" and unit.result is not None:
        listed(t, spec, unit, unit.result)
    elif unit.phase == "sleeping" and unit.next_at is not None and unit.next_at <= t.now:
        next_iteration(t, spec, unit)
    elif unit.phase == "agent":
        return agent.move(t, spec, unit)
    else:
        return False
    _recount(t, unit, parent, was_running)
    return True


def _satisfies(dep: StepRecord, spec: StepSpec) -> bool:
    if dep.state == StepState.SUCCEEDED or (dep.state == StepState.SKIPPED and dep.has_output):
        return True
    return dep.state == StepState.SKIPPED and spec.allow_skipped_needs


def _may_start(t: Turn, spec: StepSpec, parent: StepRecord | None) -> bool:
    """Nothing holds new work back: not continuing as new, not stopping, not paused, and room
    among the calls out (the run's, and for an item its step's `max_parallel`)."""
    if t.hold or t.state.stop is not None or t.state.paused:
        return False
    return _has_room(t, spec, parent)


def _has_room(t: Turn, spec: StepSpec, parent: StepRecord | None) -> bool:
    """Room among the calls out: the run's `max_parallel`, and for an item its step's."""
    limit = min(t.d.max_parallel or MAX_IN_FLIGHT, MAX_IN_FLIGHT)
    if _running(t, None) >= limit:
        return False
    if parent is None or spec.max_parallel is None:
        return True
    return _running(t, parent) < spec.max_parallel


def _recount(t: Turn, unit: StepRecord, parent: StepRecord | None, was_running: bool) -> None:
    """Keep the pass's running counts true after `unit` moved (only a moved unit changes phase):
    counting all units again after every move made a pass quadratic in the run's size (3,000
    gated items took 2.3 s, past Temporal's deadlock detector)."""
    delta = (unit.phase == "running") - was_running
    for key in ("", parent.id if parent is not None else unit.id):
        if delta and key in t.counts:
            t.counts[key] += delta


def _running(t: Turn, parent: StepRecord | None) -> int:
    """Units running in the run (`parent` None) or among a for_each step's items."""
    key = "" if parent is None else parent.id
    if key not in t.counts:
        units = t.state.units() if parent is None else parent.items or []
        t.counts[key] = sum(u.phase == "running" for u in units)
    return t.counts[key]


def _start_step(t: Turn, spec: StepSpec, unit: StepRecord) -> bool:
    deps = [t.state.steps[n] for n in spec.needs]
    if t.state.stop is not None or any(dep.phase != "done" for dep in deps):
        return False
    blocked = [dep for dep in deps if not _satisfies(dep, spec)]
    if blocked:
        names = ", ".join(f"{dep.id!r} ({dep.state.value})" for dep in blocked)
        finish(t, unit, StepState.SKIPPED, reason=f"needs {names}")
        return True
    if not _may_start(t, spec, None):
        return False
    if spec.for_each is not None:
        start_each(t, spec, spec.for_each, unit)
    else:
        start(t, spec, unit)
    _recount(t, unit, None, False)
    return True


def _wind_down(t: Turn, stop: Stop) -> None:
    """Once the run stops: calls asked for in this very pass are never made, open gates close
    and loops stop; when nothing is out any more, the units never reached end too (skipped when
    the run failed, cancelled when it was cancelled)."""
    state = t.state
    _withdraw_calls(t)
    agent.wind_down(t)
    for unit in state.units():
        if unit.phase == "gate" and unit.gate is not None and unit.gate.open:
            close(unit.gate, "cancel", [SYSTEM_ACTOR], t.now, None)
            finish(t, unit, StepState.CANCELLED, reason="run stopped")
        elif unit.phase == "sleeping":
            finish(t, unit, StepState.CANCELLED, reason="run stopped")
    _unsent_notices(t)
    if state.in_flight():
        return
    final = StepState.SKIPPED if stop.kind == "failed" else StepState.CANCELLED
    verb = "failed" if stop.kind == "failed" else "was cancelled"
    for unit in state.units():
        if unit.phase in ("pending", "queued"):
            finish(t, unit, final, reason=f"not reached: the run {verb}")
    for step in state.steps.values():
        if step.phase == "items":
            finish(t, step, final, reason=f"stopped: the run {verb}")


def _withdraw_calls(t: Turn) -> None:
    """A pass that ends with the run stopped takes back the calls it asked for: the shell stops
    every call out once the run stops, and one that never started would never report back (a
    failure and another step's result arriving in one workflow task once left a step started
    with no call made, and the run waiting on it for ever)."""
    withdrawn = [e for e in t.effects if isinstance(e, CALLS)]
    for effect in withdrawn:
        if isinstance(effect, AskModel | CheckCalls | CallTool | StoreTranscript):
            agent.withdraw(t, effect)
            continue
        unit = t.state.unit(effect.step)
        if unit is not None and unit.call_out:
            settle(t, unit, 0)
            finish(t, unit, StepState.CANCELLED, reason="run stopped before its call was made")
    t.effects[:] = [e for e in t.effects if not isinstance(e, CALLS)]


def _unsent_notices(t: Turn) -> None:
    """Approvers are not told of a gate that closed before they could be: the run stopped."""
    t.effects[:] = [
        e for e in t.effects if not isinstance(e, Notify) or _still_open(t.state.gate(e.gate))
    ]


def _still_open(found: tuple[StepRecord, GateRecord] | None) -> bool:
    return found is not None and found[1].open
