"""Carrying out what an agent step's rules ask: each model turn as an llm.chat activity, the
check of what the model asked for (a local activity), each call as its tool's own activity (local
or regular, under the step's retry, with an idempotency key per call), the transcript's writes.
Each is a task whose outcome comes back as an event. Workflow code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        AGENT_CHECK_ACTIVITY,
        AGENT_TRANSCRIPT_ACTIVITY,
        AgentCheckResult,
        ArtifactRef,
        CallCheck,
    )
    from workflows import calls
    from workflows.language.definition import Definition
    from workflows.language.limits import AGENT_REPLY_INLINE_BYTES, MIN_PREVIEW_BYTES
    from workflows.retries import (
        ARCHIVE_RETRY,
        ARCHIVE_TIMEOUT,
        CHECK_RETRY,
        CHECK_TIMEOUT,
    )
    from workflows.rules import agent
    from workflows.rules.records import Result
    from workflows.rules.state import RunData
    from workflows.rules.turn import AskModel, CallTool, CheckCalls, StopCalls, StoreTranscript


class AgentShell:
    """The agent effects of one run, each a task kept by its key (`<step>/turn-3`,
    `<step>/call-5`) in the run's tasks, so a step's calls can be stopped together. A task
    cancelled before or while it runs reports back as cancelled: the loop never waits for it."""

    def __init__(
        self,
        definition: Definition,
        caller: calls.Caller,
        state: RunData,
        event: Callable[..., Any],
        tasks: dict[str, asyncio.Task[None]],
    ) -> None:
        self._def = definition
        self._calls = caller
        self._state = state
        self._event = event
        self._tasks = tasks

    def perform(self, effect: Any, local: bool) -> None:
        if isinstance(effect, AskModel):
            cancelled = Result(round=0, ok=False, cancelled=True, attempts=0)
            back = partial(self._event, agent.replied, self._state, effect.step, effect.turn)
            self._launch(f"{effect.step}/turn-{effect.turn}", self._ask(effect), back, cancelled)
        elif isinstance(effect, CheckCalls):
            back = partial(self._event, agent.checked, self._state, effect.step, effect.turn)
            stopped = _unchecked(effect, "the run stopped before the check")
            self._launch(f"{effect.step}/check-{effect.turn}", self._check(effect), back, stopped)
        elif isinstance(effect, CallTool):
            cancelled = Result(round=0, ok=False, cancelled=True, attempts=0)
            back = partial(self._event, agent.returned, self._state, effect.step, effect.n)
            self._launch(
                f"{effect.step}/call-{effect.n}", self._call(effect, local), back, cancelled
            )
        elif isinstance(effect, StoreTranscript):
            back = partial(self._event, agent.stored, self._state, effect.step)
            self._launch(f"{effect.step}/{effect.write.name}", self._store(effect), back, None)
        elif isinstance(effect, StopCalls):
            for key, task in list(self._tasks.items()):
                if key.startswith(f"{effect.step}/"):
                    task.cancel()

    def _launch(
        self, key: str, coro: Coroutine[Any, Any, Any], back: Callable[[Any], Any], stopped: Any
    ) -> None:
        """Run `coro`; its outcome (or `stopped`, if it was cancelled) goes back through `back`."""

        async def run() -> None:
            try:
                outcome = await coro
            except asyncio.CancelledError:
                outcome = stopped
            self._tasks.pop(key, None)
            back(outcome)

        task = asyncio.create_task(run())
        task.add_done_callback(partial(self._never_ran, key, back, stopped))
        self._tasks[key] = task

    def _never_ran(
        self, key: str, back: Callable[[Any], Any], stopped: Any, task: asyncio.Task[None]
    ) -> None:
        if task.cancelled() and self._tasks.get(key) is task:
            self._tasks.pop(key, None)
            back(stopped)

    def _key(self, *parts: object) -> str:
        return "/".join([workflow.info().workflow_id, *map(str, parts)])

    async def _ask(self, e: AskModel) -> Result:
        spec = self._def.step(e.step)
        model = (spec.agent.resolved_model if spec.agent is not None else None) or "llm.chat"
        name, call = self._calls.tool_call(
            e.step,
            model,
            e.args,
            e.slots,
            self._key(e.step, f"turn-{e.turn}"),
            inline_bytes=AGENT_REPLY_INLINE_BYTES,
            preview_bytes=MIN_PREVIEW_BYTES,
        )
        summary = f"{e.step}: turn {e.turn} ({model})"
        timeout = self._def.defaults.timeout
        return await _guarded(
            self._calls.run(spec, name, call, local=False, summary=summary, attempt_timeout=timeout)
        )

    async def _check(self, e: CheckCalls) -> AgentCheckResult:
        try:
            found: AgentCheckResult = await workflow.execute_local_activity(
                AGENT_CHECK_ACTIVITY,
                e.check,
                result_type=AgentCheckResult,
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=CHECK_RETRY,
                summary=f"{e.step}: check turn {e.turn}",
            )
        except ActivityError as err:
            return _unchecked(e, f"could not be checked: {calls.failure_message(err)}")
        return found

    async def _call(self, e: CallTool, local: bool) -> Result:
        spec = self._def.step(e.step)
        unit = f"{e.step}.call-{e.n}"
        name, call = self._calls.tool_call(
            unit,
            e.tool,
            e.args,
            e.slots,
            self._key(e.step, f"call-{e.n}"),
            inline_bytes=e.inline_bytes,
            preview_bytes=e.preview_bytes,
        )
        summary = f"{unit}: {e.tool}" + (" (local)" if local else "")
        # An agent step's own `timeout` bounds its whole loop, not one attempt of a call.
        timeout = "" if local else self._def.defaults.timeout
        return await _guarded(
            self._calls.run(spec, name, call, local=local, summary=summary, attempt_timeout=timeout)
        )

    async def _store(self, e: StoreTranscript) -> dict[str, Any] | None:
        ref: ArtifactRef = await workflow.execute_activity(
            AGENT_TRANSCRIPT_ACTIVITY,
            e.write,
            result_type=ArtifactRef,
            start_to_close_timeout=ARCHIVE_TIMEOUT,
            retry_policy=ARCHIVE_RETRY,
            summary=f"{e.step}: write {e.write.name}",
        )
        return ref.model_dump()


def _unchecked(e: CheckCalls, said: str) -> AgentCheckResult:
    return AgentCheckResult(
        calls=[CallCheck(n=c.n, issues=[said]) for c in e.check.calls],
        reply_issues=[said] if e.check.reply is not None else [],
    )


async def _guarded(call: Coroutine[Any, Any, Result]) -> Result:
    """A call's outcome, whatever it raised (a cancel goes on up: the task reports it)."""
    try:
        return await call
    except asyncio.CancelledError:
        raise
    except Exception as err:
        workflow.logger.warning("agent call raised %r", err)
        return Result(round=0, ok=False, error=calls.failure_message(err))
