"""Helpers for agent step tests: a scripted model on loopback, a worker with the ops tools and
llm.chat pointed at it, and the definitions the tests start."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowHandle

from tests.pipeline.gating import open_gate
from tests.support.util import eventually
from workflows.models import RunStatus
from workflows.pipeline import PipelineWorkflow

TRIAGE = """
name: triage
input: {type: object, properties: {service: {type: string}}}
steps:
  - id: triage
    agent:
      instructions: You triage a service. Read first; restart only if needed.
      input: "Service ${input.service} is slow."
      tools:
        - ops.read
        - {tool: ops.restart, approval: {approvers: ["role:ops"]}}
        - {tool: ops.page, policy: deny}
      max_turns: 6
EXTRA
"""


def triage(extra: str = "", **agent: Any) -> str:
    """The triage definition, with lines added to the step (`extra`) or the agent's keys."""
    text = TRIAGE.replace("EXTRA", extra)
    for key, value in agent.items():
        text = text.replace("      max_turns: 6", f"      max_turns: 6\n      {key}: {value}")
    return text


async def status(handle: WorkflowHandle[Any, Any]) -> RunStatus:
    return await handle.query(PipelineWorkflow.status)


async def call_gate(handle: WorkflowHandle[Any, Any], n: int, step: str = "triage") -> Any:
    return await open_gate(handle, f"{step}.call-{n}")


async def calls_of(handle: WorkflowHandle[Any, Any], step: str = "triage") -> list[Any]:
    """Every call of the agent step, from the status (the latest ten)."""
    st = await status(handle)
    view = next(s for s in st.steps if s.id == step)
    return list(view.agent.calls) if view.agent is not None else []


async def turn_asked(model: Any, turn: int) -> None:
    await eventually(lambda: model.shown(turn), what=f"the model asked at turn {turn}")
