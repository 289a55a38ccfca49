"""Decisions at a governed run's `review` gate, by signal or update: who may decide, a modify's
amended plan checked and assessed again, and each decision recorded in the audit."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.governed_plan import accept, assess, check
    from workflows.governed_run import GovernedRun
    from workflows.models import Decision, GateRefusal, GateView
    from workflows.rules import decisions, votes
    from workflows.rules.governed import REVIEW_GATE, amend, approval, gate_view


def admit(run: GovernedRun, d: Decision) -> GateRefusal | None:
    """Why the gate refuses `d` now, or None when it may be taken."""
    st = run.state
    if d.gate != REVIEW_GATE:
        return GateRefusal(
            code="unknown_gate",
            message=f"run has no gate {d.gate!r} (its gate is {REVIEW_GATE!r})",
        )
    if st.gate is None or st.tier_gate is None or not st.gate.open:
        shown = st.gate.outcome if st.gate is not None else "not open yet"
        return GateRefusal(
            code="gate_not_open", message=f"gate {REVIEW_GATE!r} is not open ({shown})"
        )
    refusal = votes.check(st.gate, approval(st.tier_gate), d, run.inp.requester, set())
    if (
        refusal is None
        and d.action == "modify"
        and not isinstance((d.patch or {}).get("plan"), dict)
    ):
        return GateRefusal(
            code="bad_patch", message='modify a plan with {"plan": <merge patch of the plan>}'
        )
    return refusal


async def decide(run: GovernedRun, d: Decision, via: decisions.Via) -> GateView:
    """Take `d` or raise its refusal (recorded too when it came by signal)."""
    st = run.state
    refusal = admit(run, d)
    if refusal is None and d.action == "modify":
        amended = votes.merge_patch(st.plan, (d.patch or {})["plan"])
        found = await check(run, amended)
        # The gate may have closed while the amended plan was checked.
        refusal = admit(run, d) or (
            GateRefusal(
                code="bad_patch",
                message="the amended plan is not valid: " + "; ".join(found.errors),
            )
            if found.errors
            else None
        )
        if refusal is None:
            accept(run, found)
            assess(run)
            amend(
                st,
                run.inp.policy.gate(st.assessment.tier if st.assessment else 3),
                d.actor,
                list(d.roles),
                d.comment,
                workflow.now(),
            )
    elif refusal is None and st.gate is not None and st.tier_gate is not None:
        votes.cast(st.gate, approval(st.tier_gate), d, workflow.now())
    if refusal is not None:
        if via == "signal":
            reason = f"{refusal.code}: {refusal.message}"
            st.record(decisions.entry(d, workflow.now(), via, "refused", reason))
            run.touch()
        raise ApplicationError(refusal.message, type=refusal.code, non_retryable=True)
    st.record(decisions.entry(d, workflow.now(), via, "accepted"))
    run.touch()
    if st.gate is None or st.tier_gate is None:  # admitted decisions always find both
        raise ApplicationError("the review gate is gone", type="gate_not_open", non_retryable=True)
    return gate_view(st.gate, approval(st.tier_gate))
