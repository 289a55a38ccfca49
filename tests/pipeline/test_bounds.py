"""Every bound holds in sum, at full size: a thousand gated items, and a thousand local calls
whose results together would not fit one workflow task, each complete."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.worker import Worker

from activities.registry import ToolRegistry
from activities.tools.transform import data_echo
from tests.pipeline.conftest import Start
from tests.support.fakes import FAKE_TOOLS
from tests.support.util import eventually
from workflows.language.limits import LOCAL_CALLS_PER_TASK, MAX_ITEMS
from workflows.models import Decision
from workflows.pipeline import PipelineWorkflow

GATED = """
name: many_gates
input: {type: object, properties: {n: {type: array}}}
steps:
  - id: each
    for_each: "${input.n}"
    max_parallel: 50
    tool: test.echo
    with: {v: "${item}"}
    approval: {approvers: ["role:ops"], review: "item ${item}"}
output: "${steps.each.status}"
"""

LOCAL = """
name: many_local
input: {type: object, properties: {n: {type: array}, blob: {type: string}}}
steps:
  - id: each
    for_each: "${input.n}"
    tool: data.echo
    with: {value: {n: "${item}", blob: "${input.blob}"}}
output: "${steps.each.status}"
"""


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([*FAKE_TOOLS, data_echo])


async def test_a_thousand_gated_items_open_together_and_complete(
    worker: Worker, start: Start
) -> None:
    """MAX_ITEMS items each open a gate in one workflow task (no deadlock: the pass is linear in
    the run's size); approved a hundred at a time, every item runs and the run completes."""
    handle = await start(GATED, {"n": list(range(MAX_ITEMS))})

    async def opened() -> int:
        return (await handle.query(PipelineWorkflow.status)).open_gates_total

    await eventually(opened, ok=lambda n: n == MAX_ITEMS, what="every gate open", within=120)
    gates = asyncio.Semaphore(100)

    async def approve(i: int) -> None:
        async with gates:
            d = Decision(gate=f"each.{i}", action="approve", actor="ann", roles=["ops"])
            await handle.signal(PipelineWorkflow.decide, d)

    await asyncio.gather(*(approve(i) for i in range(MAX_ITEMS)))
    result = await asyncio.wait_for(handle.result(), timeout=300)
    assert result.output == "succeeded"
    assert set(result.steps.values()) == {"succeeded"}


async def test_a_thousand_local_results_of_3_kb_spread_over_tasks_and_complete(
    worker: Worker, start: Start
) -> None:
    """A thousand local calls of 3 KB each (3 MB: more than one workflow task may record)
    complete: at most LOCAL_CALLS_PER_TASK run inside one task, the rest as regular activities,
    and the run keeps the outputs it cannot hold in the artifact store."""
    handle: WorkflowHandle[Any, Any] = await start(
        LOCAL, {"n": list(range(MAX_ITEMS)), "blob": "x" * 3_000}
    )
    result = await asyncio.wait_for(handle.result(), timeout=300)
    assert result.output == "succeeded"
    events = list((await handle.fetch_history()).events)
    markers = sum(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in events)
    regular = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in events)
    assert markers + regular >= MAX_ITEMS and regular > 0, (markers, regular)
    per_task: list[int] = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            per_task.append(0)
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and per_task:
            per_task[-1] += 1
    assert max(per_task) <= LOCAL_CALLS_PER_TASK, max(per_task)
    status = await handle.query(PipelineWorkflow.status)
    (each,) = status.steps
    assert each.item_counts == {"succeeded": MAX_ITEMS}
