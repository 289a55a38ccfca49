"""The units that repeat: a `repeat` step's iterations (until its condition holds, within its
bounds), and a `for_each` step's list becoming items and their outputs gathered. Pure."""

from __future__ import annotations

from typing import Any

from workflows.language import expr
from workflows.language.definition import RepeatSpec, StepSpec
from workflows.language.durations import parse_duration
from workflows.language.limits import MAX_ITEMS, MAX_ITERATIONS, REPEAT_FLOOR
from workflows.language.refs import RefError
from workflows.names import StepState
from workflows.rules.outcomes import fail, finish, set_output
from workflows.rules.state import Iteration, Result, StepRecord
from workflows.rules.turn import LoadList, Turn, truthy
from workflows.rules.unit_gates import gate_at, open_, review_or_succeed


def loop_done(t: Turn, spec: StepSpec, repeat: RepeatSpec, unit: StepRecord) -> bool:
    """After an iteration: True when the loop is over; otherwise the next one is arranged."""
    n = unit.iteration + 1
    try:
        held = truthy(repeat.until, t.scope(unit, output=unit.output, iteration=n))
    except (expr.ExpressionError, RefError) as err:
        fail(t, spec, unit, f"repeat.until could not be evaluated: {err}")
        return False
    unit.iterations.append(Iteration(n=n, ok=True, preview=unit.preview, until=held, at=t.now))
    if held:
        return True
    if n >= (repeat.max_iterations or MAX_ITERATIONS):
        fail(t, spec, unit, f"repeat.until did not hold within {n} iterations")
        return False
    if unit.deadline is not None and t.now >= unit.deadline:
        fail(t, spec, unit, f"repeat.until did not hold within {repeat.timeout}")
        return False
    unit.previous = unit.output
    # Every loop waits durably between iterations, a loop without `every` at least REPEAT_FLOOR,
    # so a run that is to continue as new can let its calls drain in between.
    unit.phase = "sleeping"
    due = t.now + (parse_duration(repeat.every) if repeat.every else REPEAT_FLOOR)
    unit.next_at = min(due, unit.deadline) if unit.deadline else due
    return False


def next_iteration(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """The loop's next iteration is due: its inputs resolved again (they may read
    `previous.output`), its call queued to start once `max_parallel` leaves room."""
    if unit.deadline is not None and t.now >= unit.deadline:
        timeout = spec.repeat.timeout if spec.repeat is not None else None
        fail(t, spec, unit, f"repeat.until did not hold within {timeout}")
        return
    unit.next_at = None
    unit.iteration += 1
    try:
        unit.args, unit.slots = t.scope(unit).resolve_slots(spec.with_)
    except RefError as err:
        fail(t, spec, unit, str(err))
        return
    unit.phase = "queued"


def start_each(t: Turn, spec: StepSpec, for_each: str, unit: StepRecord) -> None:
    """A for_each step: its list (read back by an activity when it lies in a stored output), a
    gate over the whole list if it has one, then its items."""
    unit.started_at = t.now
    try:
        resolved, slots = t.scope(unit).resolve_slots({"list": for_each})
    except RefError as err:
        fail(t, spec, unit, str(err))
        return
    stored = next((s for s in slots if s.artifact is not None), None)
    if stored is not None and stored.artifact is not None:
        unit.phase, unit.state = "loading", StepState.RUNNING
        t.effects.append(LoadList(unit.id, unit.round, stored.artifact, stored.artifact_path))
        return
    _each(t, spec, unit, resolved["list"])


def listed(t: Turn, spec: StepSpec, unit: StepRecord, result: Result) -> None:
    """The list a for_each step read from the artifact store came back (or failed)."""
    unit.result = None
    if result.cancelled:
        finish(t, unit, StepState.CANCELLED, reason="run stopped")
    elif not result.ok:
        fail(t, spec, unit, f"for_each: {result.error or 'the list could not be read'}")
    else:
        _each(t, spec, unit, result.output)


def _each(t: Turn, spec: StepSpec, unit: StepRecord, values: Any) -> None:
    if not isinstance(values, list):
        fail(t, spec, unit, f"for_each must be a list, got {type(values).__name__}")
        return
    if len(values) > MAX_ITEMS:
        fail(t, spec, unit, f"for_each has {len(values)} items, more than {MAX_ITEMS}")
        return
    unit.state = StepState.RUNNING
    approval = gate_at(spec, unit, "before")
    if approval is not None:
        open_(t, approval, unit, "before", values)
    else:
        expand(unit, values)


def expand(unit: StepRecord, values: list[Any]) -> None:
    """A for_each step's items become units of their own, `<step>.<index>`."""
    unit.items = [
        StepRecord(id=f"{unit.id}.{i}", index=i, item=value) for i, value in enumerate(values)
    ]
    unit.phase = "items"
    unit.state = StepState.RUNNING


def gather(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """Every item is done: the step's output is their outputs, in order."""
    items = unit.items or []
    set_output(unit, [i.output if i.has_output else None for i in items], None, None)
    # The list holds the items' outputs once more: the state keeps them twice.
    unit.kept = sum(i.kept for i in items)
    t.state.inline_bytes += unit.kept
    unit.attempts = sum(i.attempts for i in items)
    failures = [i for i in items if i.state == StepState.FAILED]
    if failures and spec.on_error == "fail":
        finish(
            t, unit, StepState.FAILED, error=f"item {failures[0].index} failed: {failures[0].error}"
        )
        return
    review_or_succeed(t, spec, unit)
