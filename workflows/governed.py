"""GovernedWorkflow: Plan → Review by risk tier → Execute the approved plan → Remember.

A plan is given or asked of the LLM planner (shown the tools and the most similar past runs,
repaired with every error); it is checked like any definition, assessed into a tier, reviewed
at the `review` gate by the tier's approvers under the rules every gate follows, run as a child
PipelineWorkflow bound to the approved plan, and remembered for later plans.

This module is the shell that waits and takes messages; the phases are in governed_plan.py and
governed_steps.py, decisions in governed_decide.py, what the run holds and shows in
governed_live.py, and the pure state and view in governed_state.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import governed_decide
    from workflows.contract import (
        AUDIT_QUERY,
        CHILD_GATES_SIGNAL,
        GOVERNED_WORKFLOW_TYPE,
        PAGE_QUERY,
        STATUS_QUERY,
        RunState,
    )
    from workflows.governed_phases import execute, remember, review
    from workflows.governed_plan import plan
    from workflows.governed_run import GovernedRun, Stopped
    from workflows.models import (
        AuditPage,
        AuditPageInput,
        ChildGatesInput,
        Decision,
        GateRefusal,
        GateView,
        LifecycleInput,
        PipelineResult,
        RunStatus,
    )
    from workflows.rules import governed, governed_view
    from workflows.rules.governed import GovernedInput
    from workflows.rules.pages import PageInput, RunPage, page_of

__all__ = ["GovernedWorkflow"]


@workflow.defn(name=GOVERNED_WORKFLOW_TYPE)
class GovernedWorkflow:
    @workflow.init
    def __init__(self, inp: GovernedInput) -> None:
        self._run = GovernedRun(inp)

    @workflow.run
    async def run(self, inp: GovernedInput) -> PipelineResult:
        run = self._run
        run.touch()
        task = run.task = asyncio.ensure_future(self._cycle())
        while True:
            try:
                final = await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.done():
                    raise
                run.temporal_cancel = True
                run.cancel = run.cancel or LifecycleInput(reason="Temporal cancel request")
                task.cancel()
        return await self._end(final)

    async def _cycle(self) -> RunState:
        """The four phases; returns the state the run ends in."""
        run = self._run
        try:
            await plan(run)
            governed.assess(run.state, run.inp)
            run.touch()
            outcome = await review(run)
        except Stopped as stop:
            run.state.error = stop.message
            return stop.state
        except asyncio.CancelledError:
            run.state.error = "cancelled before the plan was decided"
            return RunState.CANCELLED
        final = RunState.FAILED
        if outcome in ("approve", "modify"):
            final = await execute(run)
        elif outcome == "cancel":
            final = RunState.CANCELLED
        await asyncio.shield(asyncio.ensure_future(remember(run, final)))
        return final

    async def _end(self, final: RunState) -> PipelineResult:
        run = self._run
        st = run.state
        st.enter(final.value, workflow.now())  # type: ignore[arg-type]
        run.metrics.finished(final.value)
        run.touch()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if final == RunState.COMPLETED:
            return PipelineResult(state=final.value, output=st.output)
        if final == RunState.CANCELLED and run.temporal_cancel:
            raise asyncio.CancelledError(st.error)
        kind = "GovernedCancelled" if final == RunState.CANCELLED else "GovernedFailed"
        raise ApplicationError(st.error or final.value, type=kind, non_retryable=True)

    # ---- decisions ---------------------------------------------------------------------------

    @workflow.signal
    async def decide(self, raw: Any) -> None:
        try:
            d = raw if isinstance(raw, Decision) else Decision.model_validate(raw)
        except ValidationError as err:
            self._run.metrics.refused("", "malformed")
            self._run.note("decision", f"malformed decision refused: {err.error_count()} error(s)")
            return
        try:
            await governed_decide.decide(self._run, d, "signal")
        except ApplicationError:
            pass  # refusals from a signal are recorded, not raised

    @workflow.update
    async def submit_decision(self, d: Decision) -> GateView:
        return await governed_decide.decide(self._run, d, "update")

    @submit_decision.validator
    def _validate_decision(self, d: Decision) -> None:
        admitted = governed.admit(self._run.state, self._run.inp, d, workflow.now())
        if isinstance(admitted, GateRefusal):
            self._run.metrics.refused(d.action, admitted.code)
            raise ApplicationError(admitted.message, type=admitted.code, non_retryable=True)

    # ---- lifecycle and status ----------------------------------------------------------------

    @workflow.signal
    def pause(self, by: LifecycleInput | None = None) -> None:
        """Hold the run before its next phase (a planning attempt, the execution)."""
        if not self._run.paused:
            self._run.paused = True
            self._run.lifecycle("pause", by)

    @workflow.signal
    def resume(self, by: LifecycleInput | None = None) -> None:
        if self._run.paused:
            self._run.paused = False
            self._run.lifecycle("resume", by)

    @workflow.signal
    def cancel(self, by: LifecycleInput | None = None) -> None:
        run = self._run
        if run.cancel is None:
            run.cancel = by or LifecycleInput()
            run.lifecycle("cancel", by)
            # A plan being made or run stops now; a review closes as cancelled on its own.
            if run.state.phase in ("plan", "execute") and run.task is not None:
                run.task.cancel()

    @workflow.signal(name=CHILD_GATES_SIGNAL)
    def child_gates(self, inp: ChildGatesInput) -> None:
        st = self._run.state
        if inp.workflow_id == st.child_workflow_id and st.child_state == "running":
            st.child_gates = list(inp.gates)
            self._run.touch()

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        info = workflow.info()
        run = self._run
        return governed_view.status(run.state, run.inp, info.workflow_id, info.run_id, run.paused)

    @workflow.query(name=AUDIT_QUERY)
    def audit(self, page: AuditPageInput | None = None) -> AuditPage:
        page = page or AuditPageInput()
        st = self._run.state
        return page_of(st.audit, st.audit_total, page.after, page.limit)

    @workflow.query(name=PAGE_QUERY)
    def page(self, page: PageInput) -> RunPage:
        """Its review gate (a governed run has no steps of its own)."""
        return governed_view.page(self._run.state, page)
