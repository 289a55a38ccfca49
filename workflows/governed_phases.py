"""The Review, Execute and Remember phases of a governed run: the tier's gate (or the policy's
automatic approval), the approved plan run as a child PipelineWorkflow, and the pattern left in
the memory for later plans."""

from __future__ import annotations

import asyncio
import json

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.models import MEMORY_WRITE_ACTIVITY, MemoryPattern
    from workflows.calls import failure_message
    from workflows.contract import WORKFLOW_TYPE, RunState
    from workflows.governed_plan import llm_assessment
    from workflows.governed_run import GovernedRun, Stopped
    from workflows.language.definition import Definition
    from workflows.language.durations import parse_duration
    from workflows.models import AuditEntry, PipelineInput, PipelineResult
    from workflows.retries import MEMORY_WRITE_RETRY, MEMORY_WRITE_TIMEOUT
    from workflows.rules import votes
    from workflows.rules.gates import gate_clock, timed_out
    from workflows.rules.governed import REVIEW_GATE, approval, open_review

DECIDED = {"approve": "approved", "modify": "modified", "reject": "rejected"}


async def review(run: GovernedRun) -> str:
    """The review's outcome: approve (by the policy or the tier's approvers), modify, reject or
    cancel (by a person, the gate's timeout, or the run's cancellation)."""
    st, inp = run.state, run.inp
    if st.assessment is None:
        raise Stopped(RunState.FAILED, "the plan was not assessed")
    if inp.policy.llm_assessor:
        await llm_assessment(run)
    st.enter("review", workflow.now(), f"tier {st.assessment.tier}, score {st.assessment.score}")
    gate = inp.policy.gate(st.assessment.tier)
    if gate is None:
        st.decision = "auto"
        st.record(
            AuditEntry(
                at=workflow.now(),
                kind="auto_approve",
                gate=REVIEW_GATE,
                action="approve",
                reason="tier 1: approved by the policy",
            )
        )
        run.touch()
        return "approve"
    record = open_review(st, gate, workflow.now())
    if gate.timeout:
        record.deadline = record.opened_at + parse_duration(gate.timeout)
    run.touch()
    timeout = (record.deadline - workflow.now()) if record.deadline else None
    try:
        await workflow.wait_condition(
            lambda: not record.open or run.cancel is not None,
            timeout=timeout,
            timeout_summary=gate_clock(record) if timeout is not None else None,
        )
    except TimeoutError:
        timed_out(st, record, approval(gate), workflow.now())
        st.decision = "timeout"
    if record.open:  # cancelled while waiting
        who = [run.cancel.actor or "system"] if run.cancel else ["system"]
        votes.close(record, "cancel", who, workflow.now(), None)
    outcome = record.outcome or "cancel"
    st.decision = st.decision or DECIDED.get(outcome, "cancelled")
    if outcome == "reject":
        st.error = f"the plan was rejected by {', '.join(record.decided_by)}"
    run.touch()
    return outcome


async def execute(run: GovernedRun) -> RunState:
    """The approved plan run as a child PipelineWorkflow; its end is the run's."""
    st, inp = run.state, run.inp
    await workflow.wait_condition(lambda: not run.paused or run.cancel is not None)
    if run.cancel is not None:
        who = run.cancel.actor or "a Temporal cancel request"
        st.error = f"cancelled by {who} before running"
        return RunState.CANCELLED
    st.enter("execute", workflow.now())
    info = workflow.info()
    st.child_workflow_id, st.child_state = f"{info.workflow_id}--execute", "running"
    run.touch()
    if st.plan is None:
        st.child_state, st.error = "failed", "no plan to execute"
        return RunState.FAILED
    try:
        child = PipelineInput(
            definition=Definition.model_validate(st.plan),
            input=inp.context,
            requester=inp.requester,
            notify=inp.notify,
        )
    except ValidationError as err:
        # Any other exception here would fail the workflow task and retry it forever.
        st.child_state = "failed"
        st.error = f"the approved plan cannot run: {err.error_count()} validation error(s)"
        return RunState.FAILED
    try:
        result: PipelineResult = await workflow.execute_child_workflow(
            WORKFLOW_TYPE,
            child,
            id=st.child_workflow_id,
            result_type=PipelineResult,
            static_summary=f"governed plan {child.definition.name} (child of {info.workflow_id})",
        )
    except ChildWorkflowError as err:
        cancelled = "cancel" in failure_message(err).lower() or run.cancel is not None
        st.child_state = "cancelled" if cancelled else "failed"
        st.error = failure_message(err)
        return RunState.CANCELLED if cancelled else RunState.FAILED
    except asyncio.CancelledError:
        st.child_state, st.error = "cancelled", "cancelled while the plan ran"
        return RunState.CANCELLED
    finally:
        st.child_gates = []
    st.child_state, st.output = "completed", result.output
    return RunState.COMPLETED


async def remember(run: GovernedRun, final: RunState) -> None:
    """One pattern for later plans; retried until the database takes it."""
    st, inp = run.state, run.inp
    st.enter("remember", workflow.now())
    run.touch()
    gate = st.gate
    assessment = st.assessment
    pattern = MemoryPattern(
        workflow_id=workflow.info().workflow_id,
        request=inp.request,
        context_summary=json.dumps(inp.context, sort_keys=True)[:2_000],
        plan=st.plan,
        tier=assessment.tier if assessment else None,
        score=assessment.score if assessment else None,
        reasons=[r.model_dump(mode="json") for r in (assessment.reasons if assessment else [])],
        decision=st.decision,
        deciders=list(gate.decided_by) if gate is not None else [],
        comments=[v.comment for v in (gate.votes if gate else []) if v.comment],
        outcome="rejected" if st.decision == "rejected" else final.value,
        error=st.error,
        durations_ms=st.durations_ms,
        created_at=workflow.now(),
    )
    await workflow.execute_activity(
        MEMORY_WRITE_ACTIVITY,
        pattern,
        result_type=int,
        start_to_close_timeout=MEMORY_WRITE_TIMEOUT,
        retry_policy=MEMORY_WRITE_RETRY,
        summary="remember this run",
    )
