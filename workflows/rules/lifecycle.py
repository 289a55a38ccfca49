"""A run's life outside its steps: pause, resume and cancel with who and why, results and child
gates arriving, audit chunks moved out, compensation, and the close. Pure rules over the state."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from activities.documents import canonical_json
from activities.models import AuditChunk
from workflows.language.definition import CompensateSpec, Definition
from workflows.language.limits import MAX_CARRY_BYTES, MAX_RUN_OUTPUT_BYTES
from workflows.language.refs import RefError
from workflows.models import (
    AuditArchiveRef,
    AuditEntry,
    CompensationView,
    GateSummary,
    LifecycleInput,
)
from workflows.names import RunState, StepState
from workflows.rules.state import ChildGates, PlanRecord, Result, RunData, StepRecord, Stop
from workflows.rules.turn import RunContext

# How a lifecycle request arrived: a signal, or Temporal's own cancel request.
Via = Literal["signal", "system"]


def _actor(by: LifecycleInput | None) -> str | None:
    return by.actor if by is not None else None


def _entry(
    action: str, by: LifecycleInput | None, now: datetime, via: Via = "signal"
) -> AuditEntry:
    return AuditEntry(
        at=now,
        kind="lifecycle",
        action=action,
        actor=_actor(by),
        reason=by.reason if by is not None else None,
        via=via,
    )


def pause(state: RunData, by: LifecycleInput | None, now: datetime) -> bool:
    """Start no new steps until resumed (running steps finish, gates can still be decided)."""
    if state.paused or state.closed is not None or state.stop is not None:
        return False
    state.paused = True
    state.record(_entry("pause", by, now))
    return True


def resume(state: RunData, by: LifecycleInput | None, now: datetime) -> bool:
    if not state.paused:
        return False
    state.paused = False
    state.record(_entry("resume", by, now))
    return True


def request_cancel(
    state: RunData,
    by: LifecycleInput | None,
    now: datetime,
    via: Via = "signal",
) -> bool:
    """Stop the run as cancelled, recording who asked and why (a Temporal cancel request arrives
    without either; the API sends the `cancel` signal with them first)."""
    if state.closed is not None or (state.stop is not None and state.stop.kind == "cancelled"):
        return False
    who = _actor(by) or ("a Temporal cancel request" if via == "system" else "an unnamed actor")
    reason = f": {by.reason}" if by is not None and by.reason else ""
    state.stop = Stop(kind="cancelled", message=f"run cancelled by {who}{reason}", by=_actor(by))
    state.record(_entry("cancel", by, now, via))
    return True


def refuse_start(state: RunData, message: str, now: datetime) -> None:
    """The run may not run at all (its schedule's owner lost the right to start it)."""
    state.stop = Stop(kind="failed", message=message)
    state.record(
        AuditEntry(
            at=now, kind="lifecycle", action="refuse_start", outcome="refused", reason=message
        )
    )


def record_result(state: RunData, unit_id: str, result: Result) -> None:
    """A unit's call (or its for_each list read) came back."""
    unit = state.unit(unit_id)
    if unit is not None and unit.phase in ("running", "loading") and unit.round == result.round:
        if unit.result is None:
            unit.result = result
    for key in [k for k, c in state.children.items() if c.step == unit_id]:
        del state.children[key]


def record_plan(state: RunData, unit_id: str, plan: PlanRecord) -> None:
    """A plan's check came back (the checked definition, or every error)."""
    unit = state.unit(unit_id)
    if unit is not None and unit.phase == "planning" and unit.plan is None:
        unit.plan = plan


def child_gates(state: RunData, step_id: str, workflow_id: str, gates: list[GateSummary]) -> None:
    """A child run of unit `step_id` reported its open gates (none: it no longer waits)."""
    unit = state.unit(step_id)
    if unit is None or unit.phase != "running":
        return
    if gates:
        state.children[workflow_id] = ChildGates(step=step_id, workflow_id=workflow_id, gates=gates)
    else:
        state.children.pop(workflow_id, None)


def archive_chunk(state: RunData, workflow_id: str) -> AuditChunk | None:
    """The oldest audit entries to move to the artifact store, once the trail has outgrown its
    bound (they stay in the state, marked as being archived, until `archived`)."""
    entries = state.archive_due()
    if not entries:
        return None
    state.archiving = len(entries)
    return AuditChunk(
        workflow_id=workflow_id,
        first_seq=entries[0].seq or 0,
        last_seq=entries[-1].seq or 0,
        prev_sha256=state.archives[-1].sha256 if state.archives else None,
        entries=[e.model_dump(mode="json") for e in entries],
    )


def resolve_output(state: RunData, d: Definition, ctx: RunContext) -> None:
    """A run that did not stop gets its output; one that cannot be resolved, or would take more
    than MAX_RUN_OUTPUT_BYTES, fails the run."""
    if state.stop is None:
        try:
            output = ctx.scope(state, lenient=True).resolve(d.output)
        except RefError as err:
            state.stop = Stop(kind="failed", message=str(err))
            return
        size = len(canonical_json(output))
        if size > MAX_RUN_OUTPUT_BYTES:
            state.stop = Stop(
                kind="failed",
                message=f"the run's output takes {size} bytes, more than {MAX_RUN_OUTPUT_BYTES}: "
                "have `output` name less, or keep large data in a step's artifact",
            )
            return
        state.output = output


def too_large_to_carry(state: RunData, size: int, now: datetime) -> None:
    """The run cannot continue as new (what it would carry is over MAX_CARRY_BYTES): it fails,
    saying so, rather than failing its workflow task for ever."""
    message = (
        f"the run's state and snapshots take {size} bytes, more than the {MAX_CARRY_BYTES} it "
        "can carry into a new run: split the pipeline into child pipelines"
    )
    state.stop = Stop(kind="failed", message=message)
    state.record(AuditEntry(at=now, kind="lifecycle", action="fail", reason=message))


def archived(state: RunData, first_seq: int, last_seq: int, path: str, sha256: str) -> None:
    """The oldest `state.archiving` entries are safely in the artifact store: keep a reference."""
    prev = state.archives[-1].sha256 if state.archives else None
    state.archives.append(
        AuditArchiveRef(
            first_seq=first_seq, last_seq=last_seq, path=path, sha256=sha256, prev_sha256=prev
        )
    )
    del state.audit[: state.archiving]
    state.archiving = 0


def compensations(state: RunData, d: Definition) -> list[tuple[StepRecord, CompensateSpec]]:
    """Succeeded units (steps, and for_each items one by one) with a compensation, the last to
    complete first."""
    done = [
        (u, comp)
        for u in state.units()
        if u.state == StepState.SUCCEEDED
        and u.items is None
        and (comp := d.step(u.id.partition(".")[0]).compensate) is not None
    ]
    return sorted(done, key=lambda pair: pair[0].completed_seq, reverse=True)


def compensated(step: StepRecord, error: str | None, now: datetime) -> None:
    """How a unit's compensation went: succeeded (the unit is compensated) or failed."""
    if error is None:
        step.compensation = CompensationView(state="succeeded", at=now)
        step.state = StepState.COMPENSATED
    else:
        step.compensation = CompensationView(state="failed", error=error, at=now)


def close(state: RunData, now: datetime) -> RunState:
    """The run's final state; a failure's message names the compensations that failed too."""
    final = RunState.COMPLETED
    if state.stop is not None:
        final = RunState.FAILED if state.stop.kind == "failed" else RunState.CANCELLED
        failed = [
            f"compensation of step {s.id!r} failed: {s.compensation.error}"
            for s in state.steps.values()
            if s.compensation is not None and s.compensation.state == "failed"
        ]
        state.error = "; ".join([state.stop.message, *failed])
    state.closed = final
    return final
