"""GovernedWorkflow: Plan → Review by risk tier → Execute the approved plan → Remember.

A plan is given or asked of the LLM planner (shown the tools and the most similar past runs,
repaired with every error); it is checked like any definition, assessed into a tier, reviewed
at the `review` gate by the tier's approvers under the rules every gate follows, run as a child
PipelineWorkflow bound to the approved plan, and remembered for later plans.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        MEMORY_SEARCH_ACTIVITY,
        MEMORY_WRITE_ACTIVITY,
        MemoryPattern,
        MemorySearch,
        MemorySearchResult,
        PlanResult,
        ToolCall,
        ToolResult,
    )
    from workflows import decisions, planner, risk, votes
    from workflows.calls import failure_message, validate_plan
    from workflows.contract import (
        AUDIT_QUERY,
        CHILD_GATES_SIGNAL,
        MEMO_GATES,
        SA_AWAITING,
        SA_PIPELINE,
        SA_STATE,
        STATUS_QUERY,
        RunState,
    )
    from workflows.definition import Definition
    from workflows.durations import parse_duration
    from workflows.governed_state import (
        REVIEW_GATE,
        GovernedInput,
        GovernedState,
        amend,
        approval,
        gate_view,
        open_review,
        summary,
        view,
    )
    from workflows.models import (
        AuditEntry,
        AuditPage,
        AuditPageInput,
        ChildGatesInput,
        Decision,
        GateRefusal,
        GateView,
        LifecycleInput,
        PipelineInput,
        PipelineResult,
        RunStatus,
    )
    from workflows.units import CheckPlan
    from workflows.view import page_of

LLM_TIMEOUT = timedelta(minutes=2)
LLM_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1))
SEARCH_TIMEOUT = timedelta(seconds=10)
SEARCH_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=500))
# Remembering must get through: the run waits in phase `remember` while the database is down.
WRITE_TIMEOUT = timedelta(seconds=30)
WRITE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
ASSESSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tier", "reasons"],
    "properties": {
        "tier": {"type": "integer", "minimum": 1, "maximum": 3},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}


class Stopped(Exception):
    """The run ends before executing: its plan could not be made, or it was cancelled."""

    def __init__(self, state: RunState, message: str) -> None:
        super().__init__(message)
        self.state, self.message = state, message


@workflow.defn(name="GovernedWorkflow")
class GovernedWorkflow:
    @workflow.init
    def __init__(self, inp: GovernedInput) -> None:
        self._inp = inp
        now = workflow.now()
        self._state = GovernedState(started_at=now, phase_started=now)
        self._shown: tuple[str, list[str]] | None = None
        self._memo: Any = None
        self._paused = False
        self._cancel: LifecycleInput | None = None
        self._temporal_cancel = False
        self._task: asyncio.Future[RunState] | None = None

    # ---- run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: GovernedInput) -> PipelineResult:
        workflow.upsert_search_attributes([SA_PIPELINE.value_set("governed")])
        self._touch()
        task = self._task = asyncio.ensure_future(self._cycle())
        while True:
            try:
                final = await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.done():
                    raise
                self._temporal_cancel = True
                self._cancel = self._cancel or LifecycleInput(reason="Temporal cancel request")
                task.cancel()
        return await self._end(final)

    async def _cycle(self) -> RunState:
        """The four phases; returns the state the run ends in."""
        st = self._state
        try:
            await self._plan()
            self._assess()
            outcome = await self._review()
        except Stopped as stop:
            st.error = stop.message
            return stop.state
        except asyncio.CancelledError:
            st.error = "cancelled before the plan was decided"
            return RunState.CANCELLED
        final = RunState.FAILED
        if outcome in ("approve", "modify"):
            final = await self._execute()
        elif outcome == "cancel":
            final = RunState.CANCELLED
        await asyncio.shield(asyncio.ensure_future(self._remember(final)))
        return final

    async def _end(self, final: RunState) -> PipelineResult:
        st = self._state
        st.enter(final.value, workflow.now())  # type: ignore[arg-type]
        self._touch()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if final == RunState.COMPLETED:
            return PipelineResult(state=final.value, output=st.output)
        if final == RunState.CANCELLED and self._temporal_cancel:
            raise asyncio.CancelledError(st.error)
        kind = "GovernedCancelled" if final == RunState.CANCELLED else "GovernedFailed"
        raise ApplicationError(st.error or final.value, type=kind, non_retryable=True)

    def _touch(self) -> None:
        self._state.revision += 1
        self._publish()

    def _note(self, action: str, reason: str) -> None:
        self._state.record(
            AuditEntry(at=workflow.now(), kind="lifecycle", action=action, reason=reason)
        )
        self._touch()

    def _check_cancel(self) -> None:
        if self._cancel is not None:
            who = self._cancel.actor or "a Temporal cancel request"
            raise Stopped(RunState.CANCELLED, f"cancelled by {who}")

    # ---- plan --------------------------------------------------------------------------------

    async def _plan(self) -> None:
        st, inp = self._state, self._inp
        if inp.plan is not None:
            st.plan_source, st.plan_attempts = "given", 1
            found = await self._check(inp.plan)
            if found.errors:
                st.plan_errors = found.errors
                raise Stopped(
                    RunState.FAILED, "the given plan is not valid: " + "; ".join(found.errors)
                )
            self._accept(found)
            return
        st.plan_source = "llm"
        st.similar = await self._similar()
        previous: Any = None
        errors: list[str] = []
        for attempt in range(1, inp.policy.planner_attempts + 1):
            await workflow.wait_condition(lambda: not self._paused or self._cancel is not None)
            self._check_cancel()
            st.plan_attempts = attempt
            self._touch()
            asked = planner.messages(
                inp.request, inp.context, inp.tools, st.similar, previous, errors
            )
            previous = await self._ask(f"plan-{attempt}", asked, planner.PLAN_SCHEMA)
            found = await self._check(previous)
            if not found.errors:
                self._accept(found)
                return
            errors = st.plan_errors = found.errors
            self._note("plan_refused", f"attempt {attempt}: " + "; ".join(errors[:5]))
        raise Stopped(
            RunState.FAILED,
            f"no valid plan after {inp.policy.planner_attempts} attempts: " + "; ".join(errors),
        )

    def _accept(self, found: PlanResult) -> None:
        self._state.plan, self._state.risks, self._state.plan_errors = (
            found.definition,
            found.risks,
            [],
        )

    async def _check(self, plan: Any) -> PlanResult:
        allowed = [t.name for t in self._inp.tools]
        return await validate_plan(CheckPlan("plan", plan, allowed, self._inp.policy.max_steps))

    async def _similar(self) -> list[Any]:
        """The most similar past runs; planning goes on without them if the memory is down."""
        try:
            found: MemorySearchResult = await workflow.execute_activity(
                MEMORY_SEARCH_ACTIVITY,
                MemorySearch(q=self._inp.request[:2_000], limit=planner.PAST_RUNS),
                result_type=MemorySearchResult,
                start_to_close_timeout=SEARCH_TIMEOUT,
                retry_policy=SEARCH_RETRY,
                summary="similar past runs",
            )
        except ActivityError as err:
            self._note("memory", f"planning without past runs: {failure_message(err)}")
            return []
        return list(found.hits)

    async def _ask(self, key: str, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Any:
        """One answer of the LLM in the JSON shape asked for (through the llm.chat tool)."""
        info = workflow.info()
        call = ToolCall(
            tool="llm.chat",
            version="",
            step_id=key,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            args={
                "messages": messages,
                "response_format": {
                    "name": key.partition("-")[0],
                    "json_schema": schema,
                    "strict": False,
                },
            },
            slots=[],
            idempotency_key=f"{info.workflow_id}/{key}",
        )
        try:
            res: ToolResult = await workflow.execute_activity(
                "llm.chat",
                call,
                result_type=ToolResult,
                start_to_close_timeout=LLM_TIMEOUT,
                retry_policy=LLM_RETRY,
                summary=f"{key}: ask the LLM",
            )
        except ActivityError as err:
            raise Stopped(
                RunState.FAILED, f"the LLM could not be asked: {failure_message(err)}"
            ) from None
        output = res.output if isinstance(res.output, dict) else {}
        return output.get("json", output.get("parsed"))

    # ---- assess and review -------------------------------------------------------------------

    def _assess(self) -> None:
        st, inp = self._state, self._inp
        assert st.plan is not None  # _plan accepted one
        st.assessment = risk.assess(
            st.plan, st.risks, inp.request, inp.context, inp.policy, st.similar
        )
        self._touch()

    async def _review(self) -> str:
        st, inp = self._state, self._inp
        assert st.assessment is not None  # _assess ran
        if inp.policy.llm_assessor:
            await self._llm_assessment()
        st.enter(
            "review", workflow.now(), f"tier {st.assessment.tier}, score {st.assessment.score}"
        )
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
            self._touch()
            return "approve"
        record = open_review(st, gate, workflow.now())
        if gate.timeout:
            record.deadline = record.opened_at + parse_duration(gate.timeout)
        self._touch()
        timeout = (record.deadline - workflow.now()) if record.deadline else None
        try:
            await workflow.wait_condition(
                lambda: not record.open or self._cancel is not None, timeout=timeout
            )
        except TimeoutError:
            action = approval(gate).on_timeout
            votes.close(
                record,
                "cancel" if action == "cancel" else "reject",
                ["system:timeout"],
                workflow.now(),
                None,
            )
            st.record(
                AuditEntry(at=workflow.now(), kind="timeout", gate=REVIEW_GATE, action=action)
            )
            st.decision = "timeout"
        if record.open:  # cancelled while waiting
            votes.close(
                record,
                "cancel",
                [self._cancel.actor or "system"] if self._cancel else ["system"],
                workflow.now(),
                None,
            )
        outcome = record.outcome or "cancel"
        st.decision = st.decision or {
            "approve": "approved",
            "modify": "modified",
            "reject": "rejected",
        }.get(outcome, "cancelled")
        if outcome == "reject":
            st.error = f"the plan was rejected by {', '.join(record.decided_by)}"
        self._touch()
        return outcome

    async def _llm_assessment(self) -> None:
        st, inp = self._state, self._inp
        assert st.assessment is not None
        asked = [
            {
                "role": "system",
                "content": "You assess the risk of a plan. You may only add reasons and raise the tier (1 low, 2 peer review, 3 senior review).",
            },
            {
                "role": "user",
                "content": json.dumps(
                    {
                        "request": inp.request,
                        "plan": st.plan,
                        "assessment": st.assessment.model_dump(mode="json"),
                    },
                    sort_keys=True,
                ),
            },
        ]
        try:
            said = await self._ask("assess-1", asked, ASSESSOR_SCHEMA)
            tier = int(said.get("tier", 1)) if isinstance(said, dict) else 1
            reasons = [
                risk.Reason(rule="llm", detail=str(r)[:500])
                for r in (said or {}).get("reasons", [])[:10]
            ]
        except (Stopped, ValueError, TypeError, AttributeError) as err:
            self._note("assessor", f"the LLM assessor gave no opinion: {err}")
            return
        st.assessment = risk.raised(st.assessment, tier, reasons)

    # ---- execute and remember ----------------------------------------------------------------

    async def _execute(self) -> RunState:
        st, inp = self._state, self._inp
        await workflow.wait_condition(lambda: not self._paused or self._cancel is not None)
        if self._cancel is not None:
            st.error = (
                f"cancelled by {self._cancel.actor or 'a Temporal cancel request'} before running"
            )
            return RunState.CANCELLED
        st.enter("execute", workflow.now())
        info = workflow.info()
        st.child_workflow_id, st.child_state = f"{info.workflow_id}--execute", "running"
        self._touch()
        assert st.plan is not None
        child = PipelineInput(
            definition=Definition.model_validate(st.plan),
            input=inp.context,
            requester=inp.requester,
            notify=inp.notify,
        )
        try:
            result: PipelineResult = await workflow.execute_child_workflow(
                "PipelineWorkflow",
                child,
                id=st.child_workflow_id,
                result_type=PipelineResult,
                static_summary=f"governed plan {child.definition.name} (child of {info.workflow_id})",
            )
        except ChildWorkflowError as err:
            cancelled = "cancel" in failure_message(err).lower() or self._cancel is not None
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

    async def _remember(self, final: RunState) -> None:
        """One pattern for later plans; retried until the database takes it."""
        st, inp = self._state, self._inp
        st.enter("remember", workflow.now())
        self._touch()
        gate = st.gate
        outcome = "rejected" if st.decision == "rejected" else final.value
        pattern = MemoryPattern(
            workflow_id=workflow.info().workflow_id,
            request=inp.request,
            context_summary=json.dumps(inp.context, sort_keys=True)[:2_000],
            plan=st.plan,
            tier=st.assessment.tier if st.assessment else None,
            score=st.assessment.score if st.assessment else None,
            reasons=[
                r.model_dump(mode="json") for r in (st.assessment.reasons if st.assessment else [])
            ],
            decision=st.decision,
            deciders=list(gate.decided_by) if gate is not None else [],
            comments=[v.comment for v in (gate.votes if gate else []) if v.comment],
            outcome=outcome,
            error=st.error,
            durations_ms=st.durations_ms,
            created_at=workflow.now(),
        )
        await workflow.execute_activity(
            MEMORY_WRITE_ACTIVITY,
            pattern,
            result_type=int,
            start_to_close_timeout=WRITE_TIMEOUT,
            retry_policy=WRITE_RETRY,
            summary="remember this run",
        )

    # ---- decisions ---------------------------------------------------------------------------

    def _admit(self, d: Decision) -> GateRefusal | None:
        st = self._state
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
        refusal = votes.check(st.gate, approval(st.tier_gate), d, self._inp.requester, set())
        if (
            refusal is None
            and d.action == "modify"
            and not isinstance((d.patch or {}).get("plan"), dict)
        ):
            return GateRefusal(
                code="bad_patch", message='modify a plan with {"plan": <merge patch of the plan>}'
            )
        return refusal

    async def _decide(self, d: Decision, via: decisions.Via) -> GateView:
        st = self._state
        refusal = self._admit(d)
        if refusal is None and d.action == "modify":
            assert st.plan is not None and isinstance(d.patch, dict)
            amended = votes.merge_patch(st.plan, d.patch["plan"])
            found = await self._check(amended)
            refusal = self._admit(d) or (
                GateRefusal(
                    code="bad_patch",
                    message="the amended plan is not valid: " + "; ".join(found.errors),
                )
                if found.errors
                else None
            )
            if refusal is None:
                self._accept(found)
                self._assess_amended()
                amend(
                    st,
                    self._inp.policy.gate(st.assessment.tier if st.assessment else 3),
                    d.actor,
                    list(d.roles),
                    d.comment,
                    workflow.now(),
                )
        elif refusal is None:
            assert st.gate is not None and st.tier_gate is not None
            votes.cast(st.gate, approval(st.tier_gate), d, workflow.now())
        if refusal is not None:
            if via == "signal":
                reason = f"{refusal.code}: {refusal.message}"
                st.record(decisions.entry(d, workflow.now(), via, "refused", reason))
                self._touch()
            raise ApplicationError(refusal.message, type=refusal.code, non_retryable=True)
        st.record(decisions.entry(d, workflow.now(), via, "accepted"))
        self._touch()
        assert st.gate is not None and st.tier_gate is not None
        return gate_view(st.gate, approval(st.tier_gate))

    def _assess_amended(self) -> None:
        st, inp = self._state, self._inp
        assert st.plan is not None
        st.assessment = risk.assess(
            st.plan, st.risks, inp.request, inp.context, inp.policy, st.similar
        )

    @workflow.signal
    async def decide(self, raw: Any) -> None:
        try:
            d = raw if isinstance(raw, Decision) else Decision.model_validate(raw)
        except ValidationError as err:
            self._note("decision", f"malformed decision refused: {err.error_count()} error(s)")
            return
        try:
            await self._decide(d, "signal")
        except ApplicationError:
            pass  # refusals from a signal are recorded, not raised

    @workflow.update
    async def submit_decision(self, d: Decision) -> GateView:
        return await self._decide(d, "update")

    @submit_decision.validator
    def _validate_decision(self, d: Decision) -> None:
        refusal = self._admit(d)
        if refusal is not None:
            raise ApplicationError(refusal.message, type=refusal.code, non_retryable=True)

    # ---- lifecycle and status ----------------------------------------------------------------

    @workflow.signal
    def pause(self, by: LifecycleInput | None = None) -> None:
        """Hold the run before its next phase (a planning attempt, the execution)."""
        if not self._paused:
            self._paused = True
            self._lifecycle("pause", by)

    @workflow.signal
    def resume(self, by: LifecycleInput | None = None) -> None:
        if self._paused:
            self._paused = False
            self._lifecycle("resume", by)

    @workflow.signal
    def cancel(self, by: LifecycleInput | None = None) -> None:
        if self._cancel is None:
            self._cancel = by or LifecycleInput()
            self._lifecycle("cancel", by)
            # A plan being made or run stops now; a review closes as cancelled on its own.
            if self._state.phase in ("plan", "execute") and self._task is not None:
                self._task.cancel()

    def _lifecycle(self, action: str, by: LifecycleInput | None) -> None:
        self._state.record(
            AuditEntry(
                at=workflow.now(),
                kind="lifecycle",
                action=action,
                actor=by.actor if by else None,
                reason=by.reason if by else None,
                via="signal",
            )
        )
        self._touch()

    @workflow.signal(name=CHILD_GATES_SIGNAL)
    def child_gates(self, inp: ChildGatesInput) -> None:
        if (
            inp.workflow_id == self._state.child_workflow_id
            and self._state.child_state == "running"
        ):
            self._state.child_gates = list(inp.gates)
            self._touch()

    def _run_state(self) -> RunState:
        phase = self._state.phase
        if phase in ("completed", "failed", "cancelled"):
            return RunState(phase)
        if self._paused:
            return RunState.PAUSED
        gate = self._state.gate
        if (gate is not None and gate.open) or self._state.child_gates:
            return RunState.WAITING
        return RunState.RUNNING

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        info = workflow.info()
        return view(self._state, self._inp, info.workflow_id, info.run_id, self._run_state().value)

    @workflow.query(name=AUDIT_QUERY)
    def audit(self, page: AuditPageInput | None = None) -> AuditPage:
        page = page or AuditPageInput()
        return page_of(self._state.audit, self._state.audit_total, page.after, page.limit)

    def _publish(self) -> None:
        st = self._state
        state = self._run_state().value
        gate = st.gate
        who = sorted(gate.approvers) if gate is not None and gate.open else []
        if self._shown != (state, who):
            updates: list[SearchAttributeUpdate[Any]] = []
            if self._shown is None or self._shown[0] != state:
                updates.append(SA_STATE.value_set(state))
            if self._shown is None or self._shown[1] != who:
                updates.append(SA_AWAITING.value_set(who) if who else SA_AWAITING.value_unset())
            self._shown = (state, who)
            workflow.upsert_search_attributes(updates)
        lines = summary(st)
        if lines != self._memo:
            self._memo = lines
            workflow.upsert_memo({MEMO_GATES: lines})
        tier = (
            f"tier {st.assessment.tier} (score {st.assessment.score})"
            if st.assessment
            else "not assessed yet"
        )
        details = [f"**{state}** · governed, phase **{st.phase}**, {tier}"]
        if st.child_workflow_id:
            details.append(f"- plan runs as `{st.child_workflow_id}`: {st.child_state}")
        if gate is not None and gate.open:
            details.append(f"- review waits for {', '.join(gate.approvers)}")
        workflow.set_current_details("\n".join(details))
