"""What happens to one unit of work (a step, or one item of a for_each step) as it starts, as
its results come back and as its gates are decided: the phase machine steps and items share.
Its parts: outcomes.py (the call and the ends), unit_gates.py (gates), loops.py (repeat and
for_each). Pure: `now` is given and effects are returned, never carried out."""

from __future__ import annotations

from workflows.language import expr
from workflows.language.definition import StepSpec
from workflows.language.durations import parse_duration
from workflows.language.refs import RefError
from workflows.names import StepState
from workflows.rules import agent
from workflows.rules.loops import (
    expand,
    gather,
    listed,
    loop_done,
    next_iteration,
    start_each,
)
from workflows.rules.outcomes import fail, finish, plan_digest, run, set_output, settle
from workflows.rules.state import GateRecord, Outcome, PlanRecord, Result, StepRecord, Stop
from workflows.rules.turn import (
    CheckPlan,
    Effect,
    Invoke,
    LoadList,
    RunContext,
    Turn,
    step_of,
    truthy,
    unit_scope,
)
from workflows.rules.unit_gates import gate_at, open_, review_or_succeed
from workflows.rules.votes import SYSTEM_ACTOR, go_on_voters, merge_patch

__all__ = [
    "CheckPlan",
    "Effect",
    "Invoke",
    "LoadList",
    "RunContext",
    "Turn",
    "decided",
    "expand",
    "fail",
    "failed",
    "finish",
    "gate_at",
    "gather",
    "listed",
    "next_iteration",
    "open_",
    "plan_digest",
    "planned",
    "returned",
    "run",
    "set_output",
    "start",
    "start_each",
    "step_of",
    "truthy",
    "unit_scope",
]


def start(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """A unit whose needs are met: its condition, its inputs, then its gate or its call."""
    scope = t.scope(unit)
    unit.started_at = t.now
    plan = spec.pipeline if not isinstance(spec.pipeline, str | None) else None
    try:
        if spec.if_ and not truthy(spec.if_, scope):
            finish(t, unit, StepState.SKIPPED, reason=f"condition false: {spec.if_}")
            return
        unit.args, unit.slots = scope.resolve_slots(spec.with_)
        plan_value = scope.resolve(plan.definition) if plan is not None else None
    except (expr.ExpressionError, RefError) as err:
        fail(t, spec, unit, str(err))
        return
    unit.state = StepState.RUNNING
    if spec.agent is not None:
        agent.begin(t, spec, unit)
        return
    if plan is not None:
        unit.phase = "planning"
        t.effects.append(
            CheckPlan(
                unit.id,
                plan_value,
                list(plan.allowed_tools),
                plan.max_steps,
                list(plan.allowed_task_queues),
            )
        )
        return
    if spec.repeat is not None and spec.repeat.timeout:
        unit.deadline = t.now + parse_duration(spec.repeat.timeout)
    approval = gate_at(spec, unit, "before")
    if approval is not None:
        open_(t, approval, unit, "before", unit.args)
    else:
        run(t, unit)


def planned(t: Turn, spec: StepSpec, unit: StepRecord, plan: PlanRecord) -> None:
    """The plan's check came back: fail with every error, or review it, or run it."""
    if plan.errors:
        fail(t, spec, unit, "the plan is not valid: " + "; ".join(plan.errors))
        return
    approval = gate_at(spec, unit, "before")
    if approval is not None:
        open_(t, approval, unit, "before", {"plan": plan.definition, "input": unit.args})
    else:
        run(t, unit)


def decided(t: Turn, spec: StepSpec, unit: StepRecord, gate: GateRecord, outcome: Outcome) -> None:
    """A decided gate moves its unit on."""
    unit.approvers_seen = sorted(set(unit.approvers_seen) | go_on_voters(gate))
    who = ", ".join(gate.decided_by) or SYSTEM_ACTOR
    stage = gate.stage
    if outcome == "cancel":
        finish(t, unit, StepState.CANCELLED, reason=f"cancelled at {stage} gate by {who}")
        if t.state.stop is None:
            t.state.stop = Stop(
                kind="cancelled", message=f"run cancelled at a gate by {who}", by=who
            )
    elif outcome == "reject":
        failure = f"{unit.error}; " if stage == "on_failure" and unit.error else ""
        fail(t, spec, unit, f"{failure}rejected at {stage} gate by {who}")
    elif outcome == "skip":
        if stage == "after":
            unit.output, unit.has_output, unit.preview, unit.artifact = None, False, None, None
        if stage == "on_failure" and gate.patch is not None:
            set_output(unit, gate.patch, None, None)
        finish(t, unit, StepState.SKIPPED, reason=f"skipped at {stage} gate by {who}")
    elif outcome == "retry":
        unit.round += 1
        unit.args = merge_patch(unit.args, gate.patch or {})
        unit.error = None
        _go_on(t, unit)
    elif stage == "before":  # approve or modify: go on with what the gate shows now
        if spec.for_each is not None and unit.index is None:
            expand(unit, gate.subject if isinstance(gate.subject, list) else [])
        else:
            if unit.plan is None:
                unit.args = gate.subject
            _go_on(t, unit)
    else:  # approve or modify after the call: the output is what the gate shows now
        if gate.modified:
            set_output(unit, gate.subject, None, None)
        finish(t, unit, StepState.SUCCEEDED)


def _go_on(t: Turn, unit: StepRecord) -> None:
    """After a gate: queue the call for the scheduler, which starts it once `max_parallel`
    leaves room (a run that stopped meanwhile ends the unit instead)."""
    if t.state.stop is None:
        unit.phase, unit.state = "queued", StepState.PENDING
    else:
        run(t, unit)


def returned(t: Turn, spec: StepSpec, unit: StepRecord, result: Result) -> None:
    """A call came back: check it, loop on it, review it, or finish the unit."""
    settle(t, unit, result.size)
    unit.result = None
    unit.attempts += result.attempts
    if result.cancelled:
        finish(t, unit, StepState.CANCELLED, reason="run stopped")
        return
    if not result.ok:
        failed(t, spec, unit, result.error or "failed")
        return
    set_output(unit, result.output, result.preview, result.artifact)
    # `until` judges each iteration; `check` judges what the step ends with.
    if spec.repeat is not None and not loop_done(t, spec, spec.repeat, unit):
        return
    if spec.check is not None:
        try:
            passed = truthy(spec.check.condition, t.scope(unit, output=result.output))
        except (expr.ExpressionError, RefError) as err:
            failed(t, spec, unit, f"check could not be evaluated: {err}")
            return
        if not passed:
            failed(t, spec, unit, f"check failed: {spec.check.message}")
            return
    review_or_succeed(t, spec, unit)


def failed(t: Turn, spec: StepSpec, unit: StepRecord, error: str) -> None:
    """A call failed: its on_failure gate opens if it has one, else the unit fails."""
    unit.error = error
    approval = gate_at(spec, unit, "on_failure")
    if approval is not None and t.state.stop is None:
        open_(t, approval, unit, "on_failure", {"error": error, "inputs": unit.args})
    else:
        fail(t, spec, unit, error)
