"""Carrying out what the rules ask of a pipeline run: each tool call, child run, plan check or
for_each list read as a task of its own whose result comes back as an event, and gate
notifications in the background. Workflow code."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import AuditChunk, PlanResult
    from workflows import calls, children, internal
    from workflows.agent_effects import AgentShell
    from workflows.language.definition import Definition
    from workflows.language.limits import LOCAL_CALLS_PER_TASK
    from workflows.metrics import RunMetrics
    from workflows.rules import lifecycle
    from workflows.rules.scheduler import CheckPlan, Effect, Invoke, LoadList
    from workflows.rules.state import PlanRecord, Result, RunData
    from workflows.rules.turn import AgentEffect, CallTool
    from workflows.rules.units import plan_digest

Event = Callable[..., Any]
Notify = Callable[[Any], Any]


def evicted() -> bool:
    """A task of the run was cancelled by the worker evicting the run from its cache, not by a
    cancel request (only a request sets the cancellation reason, and the SDK counts an eviction
    as replaying). The worker drops whatever the run does now and replays it when it next needs
    it, so the run stops at once instead of winding down as a cancelled run: an eviction cost the
    rules' whole stop (a pass of `advance`, the close, a publication) for nothing."""
    return workflow.cancellation_reason() is None and workflow.unsafe.is_replaying()


class Effects:
    """The calls a run has out, by unit; those running inside the workflow task (local
    activities) are known, so the run publishes nothing while one is out."""

    # Slots: a worker keeps one of these per cached run.
    __slots__ = (
        "_agent",
        "_calls",
        "_def",
        "_event",
        "_metrics",
        "_state",
        "_task_budget",
        "archiving",
        "local",
        "tasks",
    )

    def __init__(
        self,
        definition: Definition,
        caller: calls.Caller,
        state: RunData,
        event: Event,
        metrics: RunMetrics,
    ):
        self._def = definition
        self._calls = caller
        self._state = state
        self._event = event
        self._metrics = metrics
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.local: set[str] = set()
        # The audit chunk being moved to the artifact store, one at a time.
        self.archiving: asyncio.Task[None] | None = None
        self._task_budget = TaskBudget()
        self._agent: AgentShell | None = None  # made for the first agent effect

    def perform(self, effect: Effect, notify: Notify) -> None:
        if isinstance(effect, (Invoke, CallTool)):
            self._metrics.started(effect)
        if isinstance(effect, AgentEffect):
            local = isinstance(effect, CallTool) and effect.local and self._task_budget.take()
            if self._agent is None:
                self._agent = AgentShell(
                    self._def, self._calls, self._state, self._event, self.tasks
                )
            self._agent.perform(effect, local)
        elif isinstance(effect, Invoke):
            local = calls.in_task(self._def.step(_step_of(effect.step)), effect)
            if local and self._task_budget.take():
                self.local.add(effect.step)
            self._start(effect.step, self._invoke(effect, effect.step in self.local), effect.round)
        elif isinstance(effect, CheckPlan):
            self._start(effect.step, self._check_plan(effect), None)
        elif isinstance(effect, LoadList):
            self._start(effect.step, self._load_list(effect), effect.round)
        else:
            notify(effect)

    def _start(self, unit: str, call: Coroutine[Any, Any, None], round_: int | None) -> None:
        task = asyncio.create_task(call)
        task.add_done_callback(functools.partial(self._never_ran, unit, round_))
        self.tasks[unit] = task

    def _never_ran(self, unit: str, round_: int | None, task: asyncio.Task[None]) -> None:
        """A call cancelled before it began never reports back by itself: report it here, so
        the run never waits for a call that was not made."""
        if not task.cancelled() or self.tasks.get(unit) is not task:
            return
        self.tasks.pop(unit, None)
        self.local.discard(unit)
        if round_ is None:
            plan = PlanRecord(errors=["(plan): the run stopped before the plan was checked"])
            self._event(lifecycle.record_plan, self._state, unit, plan)
        else:
            result = Result(round=round_, ok=False, cancelled=True, attempts=0)
            self._event(lifecycle.record_result, self._state, unit, result)

    def start_archive(self) -> None:
        """Move the oldest audit entries out once the trail has outgrown its bound."""
        if self.archiving is None:
            chunk = lifecycle.archive_chunk(self._state, workflow.info().workflow_id)
            if chunk is not None:
                self.archiving = asyncio.create_task(self._archive(chunk))

    async def _archive(self, chunk: AuditChunk) -> None:
        stored = await internal.archive(chunk)
        self.archiving = None
        first, last = chunk.first_seq, chunk.last_seq
        self._event(lifecycle.archived, self._state, first, last, stored.path, stored.sha256)

    def cancel_all(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    async def _invoke(self, inv: Invoke, local: bool) -> None:
        spec = self._def.step(_step_of(inv.step))
        try:
            if calls.is_child(spec, inv):
                result = await children.run_child(self._calls, spec, inv)
            else:
                result = await self._calls.tool(spec, inv, local=local)
        except asyncio.CancelledError:
            result = Result(round=inv.round, ok=False, cancelled=True, attempts=0)
        except Exception as err:
            workflow.logger.warning("call of %s raised %r", inv.step, err)
            result = Result(round=inv.round, ok=False, error=calls.failure_message(err))
        self.tasks.pop(inv.step, None)
        self.local.discard(inv.step)
        self._event(lifecycle.record_result, self._state, inv.step, result)

    async def _load_list(self, load: LoadList) -> None:
        try:
            found = await internal.load_list(load)
            result = Result(round=load.round, ok=True, output=found.value, attempts=1)
        except asyncio.CancelledError:
            result = Result(round=load.round, ok=False, cancelled=True, attempts=0)
        except ActivityError as err:
            result = Result(round=load.round, ok=False, error=calls.failure_message(err))
        self.tasks.pop(load.step, None)
        self._event(lifecycle.record_result, self._state, load.step, result)

    async def _check_plan(self, check: CheckPlan) -> None:
        try:
            found = await internal.validate_plan(check)
        except asyncio.CancelledError:
            found = PlanResult(errors=["(plan): the run stopped before the plan was checked"])
        except ActivityError as err:
            found = PlanResult(errors=[f"(plan): the check failed: {calls.failure_message(err)}"])
        plan = PlanRecord(
            definition=found.definition, errors=found.errors, digest=plan_digest(found.definition)
        )
        self.tasks.pop(check.step, None)
        self._event(lifecycle.record_plan, self._state, check.step, plan)


class TaskBudget:
    """The local calls the current workflow task may still make: their results are recorded
    with the task that made them, in one message Temporal bounds (4 MiB), so past
    LOCAL_CALLS_PER_TASK a task's next calls run as regular activities. A task is known by the
    history's length, which only a new task changes (the same in a replay)."""

    # Slots: a worker keeps one of these per cached run.
    __slots__ = ("_left", "_task")

    def __init__(self) -> None:
        self._task = -1
        self._left = 0

    def take(self) -> bool:
        task = workflow.info().get_current_history_length()
        if task != self._task:
            self._task, self._left = task, LOCAL_CALLS_PER_TASK
        if self._left == 0:
            return False
        self._left -= 1
        return True


def _step_of(unit_id: str) -> str:
    """The step a unit belongs to (`files.3` is an item of `files`)."""
    return unit_id.partition(".")[0]
