"""What the outside sees of a governed run: its run state, its status (the same shape as a
pipeline's, its cycle under `governed`, its gate rendered like every gate) and the Web UI's
details. Pure functions of the state."""

from __future__ import annotations

from activities.masking import mask
from workflows.models import GateView, GovernedView, Progress, RunStatus
from workflows.names import GOVERNED_PIPELINE, RunState
from workflows.rules import view as views
from workflows.rules.governed import GovernedInput, GovernedState, open_gate

# How far along the cycle each phase is, of four.
_DONE = {"plan": 0, "review": 1, "execute": 2, "remember": 3}
_CLOSED = ("completed", "failed", "cancelled")


def run_state(state: GovernedState, paused: bool) -> RunState:
    if state.phase in _CLOSED:
        return RunState(state.phase)
    if paused:
        return RunState.PAUSED
    if open_gate(state) is not None or state.child_gates:
        return RunState.WAITING
    return RunState.RUNNING


def awaiting(state: GovernedState) -> list[str]:
    """Exactly the principals who may decide the open review gate."""
    found = open_gate(state)
    return sorted(found[0].approvers) if found is not None else []


def status(
    state: GovernedState, inp: GovernedInput, workflow_id: str, run_id: str, paused: bool
) -> RunStatus:
    """The run's status: the same shape as a pipeline's, its cycle under `governed`."""
    gates: list[GateView] = []
    found = open_gate(state)
    if found is not None:
        gates.append(views.gate_view(*found, with_subject=True))
    gates += [views.child_gate_view(state.child_workflow_id, g) for g in state.child_gates]
    done = _DONE.get(state.phase, 4)
    return RunStatus(
        workflow_id=workflow_id,
        run_id=run_id,
        state=run_state(state, paused).value,
        pipeline=GOVERNED_PIPELINE,
        version=1,
        requester=inp.requester,
        approval_mode="manual",
        started_at=state.started_at,
        revision=state.revision,
        paused=paused,
        steps=[],
        progress=Progress(done=done, total=4, percent=round(100.0 * done / 4, 1)),
        open_gates=gates,
        output=mask(state.output),
        error=state.error,
        audit=state.audit[-views.STATUS_AUDIT :],
        audit_total=state.audit_total,
        kind="governed",
        governed=GovernedView(
            phase=state.phase,
            request=inp.request,
            context=mask(inp.context),
            policy=inp.policy.name,
            plan=mask(state.plan),
            plan_source=state.plan_source,
            plan_attempts=state.plan_attempts,
            plan_errors=state.plan_errors,
            assessment=state.assessment.model_dump(mode="json") if state.assessment else None,
            decision=state.decision,
            child_workflow_id=state.child_workflow_id,
            child_state=state.child_state,
            similar=[h.pattern.workflow_id for h in state.similar],
            durations_ms=state.durations_ms,
        ),
    )


def details(state: GovernedState, paused: bool) -> str:
    """Markdown the Temporal Web UI shows as the run's current details."""
    tier = (
        f"tier {state.assessment.tier} (score {state.assessment.score})"
        if state.assessment
        else "not assessed yet"
    )
    lines = [f"**{run_state(state, paused).value}** · governed, phase **{state.phase}**, {tier}"]
    if state.child_workflow_id:
        lines.append(f"- plan runs as `{state.child_workflow_id}`: {state.child_state}")
    found = open_gate(state)
    if found is not None:
        lines.append(f"- review waits for {', '.join(found[0].approvers)}")
    return "\n".join(lines)
