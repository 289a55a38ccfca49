"""What one GovernedWorkflow holds while it lives: the run's state and the controls its signals
set, and what it publishes on each change (through Visibility, only what changed). Shared by the
shell (governed.py) and its phases."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import GOVERNED_PIPELINE, RunState
    from workflows.metrics import RunMetrics
    from workflows.models import AuditEntry, LifecycleInput
    from workflows.rules import governed_view
    from workflows.rules.governed import GovernedInput, GovernedState, summary
    from workflows.visibility import Visibility


class Stopped(Exception):
    """The run ends before executing: its plan could not be made, or it was cancelled."""

    def __init__(self, state: RunState, message: str) -> None:
        super().__init__(message)
        self.state, self.message = state, message


class GovernedRun:
    """The run's input, its serializable state, and the controls its signals set."""

    def __init__(self, inp: GovernedInput) -> None:
        self.inp = inp
        now = workflow.now()
        self.state = GovernedState(started_at=now, phase_started=now)
        self.paused = False
        self.cancel: LifecycleInput | None = None
        self.temporal_cancel = False
        self.task: asyncio.Future[RunState] | None = None
        self._visibility = Visibility(GOVERNED_PIPELINE)
        self.metrics = RunMetrics(GOVERNED_PIPELINE, self.state)

    def touch(self) -> None:
        self.state.revision += 1
        self.metrics.observe()
        self.publish()

    def note(self, action: str, reason: str) -> None:
        self.state.record(
            AuditEntry(at=workflow.now(), kind="lifecycle", action=action, reason=reason)
        )
        self.touch()

    def lifecycle(self, action: str, by: LifecycleInput | None) -> None:
        self.state.record(
            AuditEntry(
                at=workflow.now(),
                kind="lifecycle",
                action=action,
                actor=by.actor if by else None,
                reason=by.reason if by else None,
                via="signal",
            )
        )
        self.touch()

    def check_cancel(self) -> None:
        if self.cancel is not None:
            who = self.cancel.actor or "a Temporal cancel request"
            raise Stopped(RunState.CANCELLED, f"cancelled by {who}")

    def run_state(self) -> RunState:
        return governed_view.run_state(self.state, self.paused)

    def publish(self) -> None:
        """Search attributes (state, who may decide), the inbox memo and the Web UI's details."""
        st = self.state
        self._visibility.tell(
            self.run_state().value,
            governed_view.awaiting(st),
            summary(st, self.inp.requester),
            governed_view.details(st, self.paused),
        )
