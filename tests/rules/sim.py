"""A run driven by hand, without a server: the pure rules with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from workflows.language.definition import Definition
from workflows.models import Decision, GateRefusal, Principal
from workflows.rules import decisions, lifecycle
from workflows.rules.scheduler import Effect, Invoke, RunContext, advance, finished
from workflows.rules.state import GateRecord, Result, RunData, StepRecord, new_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def facts(
    workflow_id: str, run_id: str, requester: Principal | None, approval_mode: str
) -> RunContext:
    """A run's context with just what a status shows of it: its ids, requester and mode."""
    return RunContext(
        workflow_id,
        run_id,
        "test",
        T0.isoformat(),
        requester=requester,
        approval_mode=approval_mode,
    )


def definition(text: str) -> Definition:
    return Definition.model_validate(yaml.safe_load(text))


class Sim:
    def __init__(
        self,
        d: Definition | str,
        inp: dict[str, Any] | None = None,
        *,
        requester: str | None = "req",
        approval_mode: str = "manual",
    ) -> None:
        self.d = definition(d) if isinstance(d, str) else d
        self.now = T0
        self.state: RunData = new_state(self.d, self.now)
        self.requester = Principal(principal=requester) if requester else None
        self.ctx = RunContext(
            workflow_id="wf-1",
            run_id="run-1",
            pipeline=self.d.name,
            started_at=T0.isoformat(),
            input=self.d.effective_input(inp or {}),
            requester=self.requester,
            approval_mode=approval_mode,
        )
        self.effects: list[Effect] = []

    def advance(self, *, hold: bool = False) -> list[Effect]:
        out = advance(self.state, self.d, self.ctx, self.now, hold=hold)
        self.effects += out
        return out

    def invoked(self) -> list[str]:
        return [e.step for e in self.effects if isinstance(e, Invoke)]

    def step(self, step_id: str) -> StepRecord:
        unit = self.state.unit(step_id)
        assert unit is not None, f"no unit {step_id}"
        return unit

    def gate(self, step_id: str) -> GateRecord:
        gate = self.step(step_id).gate
        assert gate is not None, f"{step_id} has no gate"
        return gate

    def states(self) -> dict[str, str]:
        return {sid: s.state.value for sid, s in self.state.steps.items()}

    def succeed(self, step_id: str, output: Any = None, attempts: int = 1) -> list[Effect]:
        step = self.step(step_id)
        lifecycle.record_result(
            self.state,
            step_id,
            Result(
                round=step.round,
                ok=True,
                output=output if output is not None else {},
                attempts=attempts,
            ),
        )
        return self.advance()

    def fail(self, step_id: str, error: str = "boom", attempts: int = 1) -> list[Effect]:
        step = self.step(step_id)
        lifecycle.record_result(
            self.state, step_id, Result(round=step.round, ok=False, error=error, attempts=attempts)
        )
        return self.advance()

    def vote(
        self,
        gate: str,
        action: str,
        actor: str = "alice",
        roles: list[str] | None = None,
        **kw: Any,
    ) -> GateRefusal | None:
        d = Decision(
            gate=gate,
            action=action,
            actor=actor,
            roles=roles if roles is not None else ["ops"],
            **kw,
        )  # type: ignore[arg-type]
        applied = decisions.apply(self.state, self.d, d, self.requester, self.now, "signal")
        if isinstance(applied, GateRefusal):
            return applied
        self.advance()
        return None

    def tick(self, **delta: float) -> list[Effect]:
        self.now += timedelta(**delta)
        return self.advance()

    @property
    def finished(self) -> bool:
        return finished(self.state)
