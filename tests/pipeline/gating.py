"""Helpers for gate tests: wait for a gate to open and decide it."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from tests.support.util import eventually
from workflows.models import Decision, GateView
from workflows.pipeline import PipelineWorkflow


async def open_gate(handle: WorkflowHandle[Any, Any], gate: str, round_: int = 0) -> GateView:
    """Wait until `gate` is open (in round `round_`) and return its view."""

    async def probe() -> GateView | None:
        status = await handle.query(PipelineWorkflow.status)
        for g in status.open_gates:
            if g.gate == gate and g.round == round_:
                return g
        return None

    return await eventually(probe, what=f"gate {gate!r} open")


async def decide(
    handle: WorkflowHandle[Any, Any],
    gate: str,
    action: str,
    actor: str = "alice",
    roles: list[str] | None = None,
    **kw: Any,
) -> GateView:
    d = Decision(
        gate=gate, action=action, actor=actor, roles=roles if roles is not None else ["ops"], **kw
    )  # type: ignore[arg-type]
    return await handle.execute_update(PipelineWorkflow.submit_decision, d)
