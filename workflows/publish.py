"""What a run tells the outside world as it changes: visibility (state, who it awaits), the
Web UI's details, the inbox memo, a parent run, and the approvers' notifications. Workflow code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.calls import Caller
    from workflows.contract import CHILD_GATES_SIGNAL
    from workflows.language.limits import NOTIFY_IN_FLIGHT
    from workflows.language.refs import RefError
    from workflows.models import ChildGatesInput, GateSummary, PipelineInput
    from workflows.rules import notices, view
    from workflows.rules.gates import Notify, gate_spec
    from workflows.rules.scheduler import RunContext
    from workflows.rules.state import RunData
    from workflows.rules.turn import unit_scope
    from workflows.visibility import Visibility

Spawn = Callable[[Coroutine[Any, Any, None]], None]
Event = Callable[..., Any]


class Publisher:
    """Tells visibility, the Web UI and the inbox memo (through Visibility, only what changed),
    a parent run (its open gates, when they change) and the approvers (notifications)."""

    # Slots: a worker keeps one of these per cached run.
    __slots__ = (
        "_calls",
        "_ctx",
        "_def",
        "_event",
        "_inp",
        "_notifying",
        "_spawn",
        "_telling",
        "_told_parent",
        "_visibility",
    )

    def __init__(
        self, inp: PipelineInput, ctx: RunContext, calls: Caller, spawn: Spawn, event: Event
    ) -> None:
        self._inp = inp
        self._event = event
        self._def = inp.definition
        self._ctx = ctx
        self._calls = calls
        self._spawn = spawn
        self._visibility = Visibility(self._def.name)
        self._told_parent: list[GateSummary] = []
        self._telling = False
        # At most NOTIFY_IN_FLIGHT notifications out at once; the rest wait their turn (a
        # thousand item gates opening together must not exceed Temporal's pending activities).
        # Made with the first: most runs a worker caches never notify.
        self._notifying: asyncio.Semaphore | None = None

    def publish(self, state: RunData) -> None:
        """Tell visibility, the Web UI, the inbox memo and a parent run what changed."""
        gates = self._visibility.tell(
            view.run_state(state).value,
            view.awaiting(state),
            view.open_summaries(state, self._def, self._inp.requester),
            view.details(state, self._def),
        )
        parent = workflow.info().parent
        if parent is not None and gates != self._told_parent:
            self._told_parent = gates
            if not self._telling:
                self._telling = True
                self._spawn(self._tell_parent(parent.workflow_id))

    async def _tell_parent(self, parent_id: str) -> None:
        """One signal out at a time, each with the latest gates: changes while one is out are
        sent together after it (a thousand votes must not become a thousand signals)."""
        handle = workflow.get_external_workflow_handle(parent_id)
        sent: list[GateSummary] | None = None
        try:
            while sent != self._told_parent:
                sent = self._told_parent
                await handle.signal(
                    CHILD_GATES_SIGNAL,
                    ChildGatesInput(workflow_id=workflow.info().workflow_id, gates=sent),
                )
        except ApplicationError as err:  # the parent closed meanwhile: nobody to tell
            workflow.logger.info("parent not told of gates: %s", err)
        finally:
            self._telling = False

    async def notify(self, state: RunData, n: Notify) -> None:
        """Tell a gate's approvers (the gate's own notify, else the deployment's), once a slot
        among the notifications out is free. A gate's id is its unit's: a step's, or a for_each
        item's `<step>.<index>`."""
        if self._notifying is None:
            self._notifying = asyncio.Semaphore(NOTIFY_IN_FLIGHT)
        async with self._notifying:
            await self._notify(state, n)

    async def _notify(self, state: RunData, n: Notify) -> None:
        found = state.gate(n.gate)
        if found is None:
            return
        unit, gate = found
        approval = gate_spec(self._def, gate)
        spec = (approval.notify if approval else None) or self._inp.notify.notify
        if approval is None or spec is None:
            return
        info = workflow.info()
        key = f"{info.workflow_id}/{n.gate}/{gate.stage}/r{gate.round}/{n.event}"
        if n.event == "reminder":
            key += f"-{gate.reminders}"
        if n.event == "decided":
            key += f"-{gate.posts_told}"
        if n.event == "held":
            key += f"-{gate.held_told}"
        wid = info.workflow_id
        told = notices.takes_notice(spec.tool)
        shown = "opened" if n.event == "held" else n.event
        text = view.notification(gate, approval, self._def, wid, shown)
        notice = (
            notices.gate_notice(gate, approval, self._def, wid, n.event, n.only) if told else None
        )
        try:
            with_, slots = unit_scope(state, self._def, self._ctx, unit).resolve_slots(spec.with_)
        except RefError as err:
            workflow.logger.warning("gate notification not sent: %s", err)
            return
        output = await self._calls.notify(spec, with_, slots, unit.id, key, text, notice)
        if told and n.event != "decided":
            held, until = notices.held_of(output)
            if held:
                now = workflow.now()
                self._event(notices.keep_held, state, n.gate, gate.round, held, until, now)
        posts = notices.posts_of(output) if n.event != "decided" else []
        if posts:
            # Kept on the gate; a gate that closed while this was out is told so now.
            args = (state, unit.id, n.gate, gate.round, posts)
            for due in self._event(notices.keep_posts, *args):
                await self._notify(state, due)
