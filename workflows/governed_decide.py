"""Decisions at a governed run's `review` gate, by signal or update: the rules every gate follows
(workflows/rules/governed.py applies them), and a modify's amended plan checked on a worker first."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import PlanResult
    from workflows import tracing
    from workflows.governed_plan import check
    from workflows.governed_run import GovernedRun
    from workflows.models import Decision, GateRefusal, GateView
    from workflows.names import GOVERNED_PIPELINE
    from workflows.rules import decisions, governed, view, votes
    from workflows.rules.decisions import Via


async def decide(run: GovernedRun, d: Decision, via: Via) -> GateView:
    """Take `d` or raise its refusal (recorded too when it came by signal)."""
    st = run.state
    checked: PlanResult | None = None
    if d.action == "modify":
        if via == "signal":  # an update's validator admitted it; a refused signal costs no check
            _refuse(run, governed.admit(st, run.inp, d, workflow.now()), via, d)
        patch = governed.amended_plan(d)
        checked = await check(
            run, votes.merge_patch(st.plan, patch if isinstance(patch, dict) else {})
        )
    cast_at = workflow.now()
    refusal = run.metrics.cast(d, lambda: governed.apply(st, run.inp, d, cast_at, via, checked))
    run.touch()
    if refusal is not None:
        raise ApplicationError(refusal.message, type=refusal.code, non_retryable=True)
    if st.gate is None or st.tier_gate is None:  # an applied decision always finds both
        raise ApplicationError("the review gate is gone", type="gate_not_open", non_retryable=True)
    tracing.gate_closed(GOVERNED_PIPELINE, d.action, st.gate, cast_at)
    return view.answer(st.gate, governed.approval(st.tier_gate))


def _refuse(run: GovernedRun, admitted: object, via: Via, d: Decision) -> None:
    """Record and raise a refusal found before the check; nothing when `d` was admitted."""
    if isinstance(admitted, GateRefusal):
        run.metrics.refused(d.action, admitted.code)
        decisions.refuse(run.state, d, admitted, workflow.now(), via)
        run.touch()
        raise ApplicationError(admitted.message, type=admitted.code, non_retryable=True)
