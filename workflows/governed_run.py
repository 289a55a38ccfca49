"""What one GovernedWorkflow holds while it lives, and what it shows of itself: the run's state
and controls, its run state, and the search attributes, memo and details it publishes on each
change. Shared by the shell (governed.py) and its phase steps."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from workflows.contract import MEMO_GATES, SA_AWAITING, SA_STATE, RunState
    from workflows.models import AuditEntry, LifecycleInput
    from workflows.rules.governed import GovernedInput, GovernedState, summary


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
        # What was last published, so an unchanged view writes nothing to history.
        self._shown: tuple[str, list[str]] | None = None
        self._memo: Any = None

    def touch(self) -> None:
        self.state.revision += 1
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
        phase = self.state.phase
        if phase in ("completed", "failed", "cancelled"):
            return RunState(phase)
        if self.paused:
            return RunState.PAUSED
        gate = self.state.gate
        if (gate is not None and gate.open) or self.state.child_gates:
            return RunState.WAITING
        return RunState.RUNNING

    def publish(self) -> None:
        """Search attributes (state, who may decide), the inbox memo and the Web UI's details."""
        st = self.state
        state = self.run_state().value
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
