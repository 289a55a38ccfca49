"""PipelineWorkflow: the thin shell around a run's state. It waits, calls activities and handles
messages; what happens next is decided by the rules in scheduler, votes, gates and lifecycle."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.documents import canonical_json
    from workflows import calls, children, internal, metrics, tracing
    from workflows.agent_models import GrantView, RevokeGrant
    from workflows.alarm import Alarm
    from workflows.contract import (
        AUDIT_QUERY,
        CHILD_GATES_SIGNAL,
        PAGE_QUERY,
        STATUS_QUERY,
        WORKFLOW_TYPE,
        RunState,
    )
    from workflows.effects import Effects, evicted
    from workflows.language.limits import MAX_CARRY_BYTES
    from workflows.models import (
        AuditEntry,
        AuditPage,
        AuditPageInput,
        ChildGatesInput,
        Decision,
        GateView,
        LifecycleInput,
        PipelineInput,
        PipelineResult,
        RunStatus,
        StartOrigin,
    )
    from workflows.publish import Publisher
    from workflows.rules import agent_policy, decisions, lifecycle, pages, summary, view
    from workflows.rules.agent_state import Grant
    from workflows.rules.gates import next_alarm
    from workflows.rules.pages import PageInput, RunPage
    from workflows.rules.scheduler import RunContext, advance, finished
    from workflows.rules.state import RunData, new_state
    from workflows.rules.units import step_of, unit_scope


@workflow.defn(name=WORKFLOW_TYPE)
class PipelineWorkflow:
    @workflow.init
    def __init__(self, inp: PipelineInput) -> None:
        info = workflow.info()
        self._inp = inp
        self._def = inp.definition
        self._calls = calls.Caller(inp)
        resume = inp.resume
        self._state = (
            RunData.model_validate(resume) if resume else new_state(self._def, workflow.now())
        )
        self._ctx = RunContext(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            pipeline=self._def.name,
            started_at=self._state.started_at.isoformat(),
            input=self._def.effective_input(inp.input),
            requester=inp.requester,
            approval_mode=inp.approval_mode,
        )
        self._metrics = metrics.RunMetrics(self._def.name, self._state)
        self._effects = Effects(self._def, self._calls, self._state, self._event, self._metrics)
        self._background: set[asyncio.Task[None]] = set()
        self._alarm = Alarm()
        self._events = 0
        self._temporal_cancel = False
        self._outside = Publisher(inp, self._ctx, self._calls, self._spawn, self._event)

    # ---- run ---------------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: PipelineInput) -> PipelineResult:
        try:
            if inp.origin is not None and inp.resume is None:
                await self._authorize(inp.origin)
            await self._drive()
        except asyncio.CancelledError:
            self._cancelled()
            await self._drive()
        # The close (compensation too) runs in a task of its own: no cancel request cuts it short.
        end = asyncio.ensure_future(self._end())
        while True:
            try:
                return await asyncio.shield(end)
            except asyncio.CancelledError:
                if end.done():
                    raise
                self._cancelled()

    async def _authorize(self, origin: StartOrigin) -> None:
        """A scheduled run starts only if its owner may still start it."""
        allowed = await internal.authorize(origin)
        if not allowed.allowed:
            message = (
                f"schedule {origin.schedule_id!r}: {origin.owner!r} may no longer start "
                f"this run: {allowed.reason}"
            )
            self._event(lifecycle.refuse_start, self._state, message, workflow.now())

    def _cancelled(self) -> None:
        """A cancel request stops the run as cancelled; an eviction's goes on up (evicted)."""
        if evicted():
            raise asyncio.CancelledError
        self._temporal_cancel = True
        self._event(lifecycle.request_cancel, self._state, None, workflow.now(), "system")

    def _moved(self, seen: int) -> bool:
        return self._events != seen or self._alarm.rang

    async def _wait(self, condition: Callable[[], bool]) -> None:
        try:
            await workflow.wait_condition(condition)
        except asyncio.CancelledError:
            self._cancelled()

    def _event(self, rule: Callable[..., Any], *args: Any) -> Any:
        """Every change from outside the loop (a result, a vote, a signal) goes through here, so
        the loop never misses one; returns what the rule returns."""
        out = rule(*args)
        self._events += 1
        self._state.revision += 1
        return out

    async def _drive(self) -> None:
        while True:
            hold = self._state.stop is None and workflow.info().is_continue_as_new_suggested()
            for effect in advance(self._state, self._def, self._ctx, workflow.now(), hold=hold):
                self._effects.perform(effect, self._notify)
            self._metrics.observe()
            if self._state.stop is not None:
                self._effects.cancel_all()
            self._effects.start_archive()
            done = finished(self._state)
            # Nothing while a local call runs (its commands land in this same task), and nothing
            # when the run is done: _end publishes how it closed.
            if not (self._effects.local or done):
                self._outside.publish(self._state)
            if done:
                return
            if hold and not self._state.in_flight() and self._effects.archiving is None:
                await self._continue_as_new()
                continue
            due = next_alarm(self._state)
            if due is not None and due.at <= workflow.now():
                self._state.revision += 1
                continue
            self._alarm.set(due.at if due else None, due.summary if due else None)
            await self._wait(functools.partial(self._moved, self._events))
            if self._alarm.rang:
                self._alarm.reset()
                self._state.revision += 1

    def _notify(self, effect: Any) -> None:
        self._spawn(self._outside.notify(self._state, effect))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _continue_as_new(self) -> None:
        """Carry the whole state into a new run once nothing is out (history stays bounded)."""
        await self._wait(lambda: not self._background and workflow.all_handlers_finished())
        if self._state.stop is not None:
            return
        self._state.generation += 1
        # Fields at their defaults are left out: the next run fills them in again.
        carried = self._inp.model_copy(
            update={"resume": self._state.model_dump(mode="json", exclude_defaults=True)}
        )
        size = len(canonical_json(carried.model_dump(mode="json", exclude_defaults=True)))
        if size > MAX_CARRY_BYTES:
            self._state.generation -= 1
            self._event(lifecycle.too_large_to_carry, self._state, size, workflow.now())
            return
        workflow.continue_as_new(carried)

    async def _end(self) -> PipelineResult:
        state = self._state
        lifecycle.resolve_output(state, self._def, self._ctx)
        if state.stop is not None:
            self._outside.publish(self._state)  # compensation may take a while: show the stop
            await self._compensate()
        final = lifecycle.close(state, workflow.now())
        self._metrics.finished(final.value)
        state.revision += 1
        self._outside.publish(self._state)
        await workflow.wait_condition(
            lambda: not self._background and workflow.all_handlers_finished()
        )
        if final == RunState.COMPLETED:
            return PipelineResult(
                state=final.value,
                output=state.output,
                steps={sid: s.state.value for sid, s in state.steps.items()},
            )
        if final == RunState.CANCELLED and self._temporal_cancel:
            raise asyncio.CancelledError(state.error)
        kind = "PipelineFailed" if final == RunState.FAILED else "RunCancelled"
        raise ApplicationError(state.error or final.value, type=kind, non_retryable=True)

    async def _compensate(self) -> None:
        for unit, comp in lifecycle.compensations(self._state, self._def):
            error: str | None = None
            try:
                scope = unit_scope(self._state, self._def, self._ctx, unit)
                args, slots = scope.resolve_slots(comp.with_)
                spec = self._def.step(step_of(unit))
                await self._calls.compensate(spec, unit.id, comp, args, slots)
            except Exception as err:
                error = calls.failure_message(err)
            self._event(lifecycle.compensated, unit, error, workflow.now())

    # ---- decisions ---------------------------------------------------------------------------

    async def _decide(self, d: Decision, via: decisions.Via) -> GateView:
        """Check a patch if the decision carries one (after admitting a signal first, so a
        refused one costs no activity; an update's validator admitted it), then apply it."""
        found = decisions.find_gate(self._state, self._def, d.gate)
        check = decisions.check_call(self._def, found, d)
        issues: list[str] = []
        now, requester = workflow.now(), self._inp.requester
        if check is not None:
            if via == "signal":
                refusal = decisions.admit(self._state, self._def, d, requester, now)
                if not isinstance(refusal, tuple):
                    self._metrics.refused(d.action, refusal.code)
                    self._event(decisions.refuse, self._state, d, refusal, workflow.now(), via)
                    raise ApplicationError(refusal.message, type=refusal.code, non_retryable=True)
            issues = (await internal.check(check, d.gate)).issues
        cast_at = workflow.now()  # when it applies: the patch's check took time
        args = (self._state, self._def, d, requester, cast_at, via, issues)
        applied = self._metrics.cast(d, lambda: self._event(decisions.apply, *args))
        if not isinstance(applied, tuple):
            raise ApplicationError(applied.message, type=applied.code, non_retryable=True)
        _, gate, spec = applied
        tracing.gate_closed(self._def.name, d.action, gate, cast_at)
        return view.answer(gate, spec)

    @workflow.signal
    async def decide(self, raw: Any) -> None:
        """A decision from the CLI, the Web UI or a script; refusals go to the audit trail."""
        try:
            d = raw if isinstance(raw, Decision) else Decision.model_validate(raw)
        except ValidationError as err:
            entry = AuditEntry(
                at=workflow.now(),
                kind="decision",
                outcome="refused",
                reason=f"malformed decision: {err.error_count()} error(s): {err.errors()[0]['msg']}",
                via="signal",
            )
            self._metrics.refused("", "malformed")
            self._event(self._state.record, entry)
            return
        try:
            await self._decide(d, "signal")
        except ApplicationError:
            pass  # refusals from a signal are recorded, not raised

    @workflow.update
    async def submit_decision(self, d: Decision) -> GateView:
        """A validated decision: refused before it reaches history when it cannot apply."""
        return await self._decide(d, "update")

    @submit_decision.validator
    def _validate_decision(self, d: Decision) -> None:
        admitted = decisions.admit(self._state, self._def, d, self._inp.requester, workflow.now())
        if not isinstance(admitted, tuple):
            self._metrics.refused(d.action, admitted.code)
            raise ApplicationError(admitted.message, type=admitted.code, non_retryable=True)

    @workflow.update
    def revoke_grant(self, req: RevokeGrant) -> GrantView:
        """End a standing grant: by one who gave it, or an admin (the API says which)."""
        now = workflow.now()
        ended = self._event(agent_policy.revoke, self._state, req, now)
        if not isinstance(ended, Grant):
            raise ApplicationError(ended.message, type=ended.code, non_retryable=True)
        return agent_policy.grant_view(ended, now)

    @revoke_grant.validator
    def _validate_revoke(self, req: RevokeGrant) -> None:
        found = agent_policy.may_revoke(self._state, req, workflow.now())
        if not isinstance(found, Grant):
            raise ApplicationError(found.message, type=found.code, non_retryable=True)

    # ---- lifecycle ---------------------------------------------------------------------------

    @workflow.signal
    def pause(self, by: LifecycleInput | None = None) -> None:
        """Start no new steps until resumed; running steps finish."""
        self._event(lifecycle.pause, self._state, by, workflow.now())

    @workflow.signal
    def resume(self, by: LifecycleInput | None = None) -> None:
        """Continue a paused run."""
        self._event(lifecycle.resume, self._state, by, workflow.now())

    @workflow.signal
    def cancel(self, by: LifecycleInput | None = None) -> None:
        """Cancel the run (running steps stop, compensation runs), recording who and why."""
        self._event(lifecycle.request_cancel, self._state, by, workflow.now())

    @workflow.signal(name=CHILD_GATES_SIGNAL)
    def child_gates(self, inp: ChildGatesInput) -> None:
        """A child pipeline run reports its open gates, so this run shows them and waits."""
        own = workflow.info().workflow_id
        step = next(
            (
                s.id
                for s in self._state.in_flight()
                if children.child_id(own, s.id, s.round, s.iteration) == inp.workflow_id
            ),
            None,
        )
        if step is not None:
            self._event(lifecycle.child_gates, self._state, step, inp.workflow_id, inp.gates)

    # ---- status ------------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        """The bounded summary: counts, open gates first, the latest steps and audit entries."""
        return summary.status(self._state, self._def, self._ctx, workflow.now())

    @workflow.query(name=AUDIT_QUERY)
    def audit(self, page: AuditPageInput | None = None) -> AuditPage:
        """The audit trail a page at a time (the status carries only the latest entries)."""
        page = page or AuditPageInput()
        return pages.audit_page(self._state, page.after, page.limit)

    @workflow.query(name=PAGE_QUERY)
    def page(self, page: PageInput) -> RunPage:
        """A page of the run's steps, a step's items or iterations, or its gates."""
        return pages.page(self._state, self._def, page)
