"""What the outside sees of a governed run: its run state, its status (the same shape as a
pipeline's, its cycle under `governed`, its gate rendered like every gate) and the Web UI's
details. Pure functions of the state."""

from __future__ import annotations

from functools import partial

from activities.masking import mask
from workflows.models import GateView, GovernedView, Progress, RunStatus
from workflows.names import GOVERNED_PIPELINE, RunState
from workflows.rules import view as views
from workflows.rules.bounds import (
    GOVERNED_ASSESSMENT_BYTES,
    GOVERNED_CONTEXT_BYTES,
    GOVERNED_LIST,
    GOVERNED_PLAN_BYTES,
    GOVERNED_REQUEST_CHARS,
    STATUS_ERROR_CHARS,
    STATUS_GATES,
    STATUS_GATES_BYTES,
    STATUS_OUTPUT_BYTES,
    SUMMARY,
    SUMMARY_LADDER,
    Render,
    clip,
    cut,
    fit,
    small,
)
from workflows.rules.governed import GovernedInput, GovernedState, approval, open_gate
from workflows.rules.pages import PageInput, RunPage, filled, refused
from workflows.rules.summary import audit_tail, child_gates, requester

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
    """The run's status: the same shape as a pipeline's, its cycle under `governed`; bounded
    like a pipeline's (workflows/rules/summary.py), the cycle's parts each within its own bound."""
    renders: list[Render[GateView]] = []
    found = open_gate(state)
    if found is not None:
        renders.append(partial(views.gate_view, *found, with_subject=True))
    renders += child_gates((state.child_workflow_id, g) for g in state.child_gates)
    done = _DONE.get(state.phase, 4)
    output, output_cut = small(mask(state.output), STATUS_OUTPUT_BYTES)
    context, context_cut = small(mask(inp.context), GOVERNED_CONTEXT_BYTES)
    plan, plan_cut = small(mask(state.plan), GOVERNED_PLAN_BYTES)
    assessment = state.assessment.model_dump(mode="json") if state.assessment else None
    return RunStatus(
        workflow_id=workflow_id,
        run_id=run_id,
        state=run_state(state, paused).value,
        pipeline=GOVERNED_PIPELINE,
        version=1,
        requester=requester(inp.requester),
        approval_mode="manual",
        started_at=state.started_at,
        revision=state.revision,
        paused=paused,
        steps=[],
        progress=Progress(done=done, total=4, percent=round(100.0 * done / 4, 1)),
        open_gates=fit(renders, SUMMARY_LADDER, STATUS_GATES_BYTES, STATUS_GATES, uniform=True),
        open_gates_total=len(renders),
        output=output,
        output_truncated=output_cut,
        error=clip(state.error, STATUS_ERROR_CHARS),
        audit=audit_tail(state),
        audit_total=state.audit_total,
        kind="governed",
        governed=GovernedView(
            phase=state.phase,
            request=cut(inp.request, GOVERNED_REQUEST_CHARS),
            context=context,
            context_truncated=context_cut,
            policy=inp.policy.name,
            plan=plan,
            plan_truncated=plan_cut,
            plan_source=state.plan_source,
            plan_attempts=state.plan_attempts,
            plan_errors=[cut(e, SUMMARY.text) for e in state.plan_errors[:GOVERNED_LIST]],
            assessment=small(assessment, GOVERNED_ASSESSMENT_BYTES)[0],
            decision=state.decision,
            child_workflow_id=state.child_workflow_id,
            child_state=state.child_state,
            similar=[h.pattern.workflow_id for h in state.similar[:GOVERNED_LIST]],
            durations_ms=state.durations_ms,
        ),
    )


def page(state: GovernedState, inp: PageInput) -> RunPage:
    """A governed run's lists: no steps of its own (its plan runs as a child pipeline run, whose
    pages list them), and one gate, its review."""
    if inp.of == "steps":
        return RunPage(of="steps")
    if inp.of != "gates":
        where = f"; its plan runs as {state.child_workflow_id}" if state.child_workflow_id else ""
        return refused(inp, "unknown_step", f"a governed run has no steps{where}")
    g, tier = state.gate, state.tier_gate
    if inp.after is not None and (g is None or inp.after != g.gate):
        return refused(inp, "bad_cursor", f"cursor {inp.after!r} names no gate of this run")
    if g is None or tier is None:
        return RunPage(of="gates")
    shown = inp.state in (None, views.gate_state(g))
    render = partial(views.gate_view, g, approval(tier), with_subject=True)
    return filled(inp, "gates", [(g.gate, render)] if shown and not inp.after else [], int(shown))


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
