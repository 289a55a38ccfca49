"""Drill 6: nothing accepted is left stuck. Against the drill's real processes: a for_each of
local calls whose results together would not fit one workflow task completes; a loop whose
condition never holds ends at its bound; a definition one run could not hold is refused 422;
and a run stuck in its workflow task is ended by a cancel through the API."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from workflows.language.definition import Definition
from workflows.language.limits import LOCAL_CALLS_PER_TASK
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

if TYPE_CHECKING:
    from bench.drill import DrillStack

LOCAL = """
name: drill_local
input: {type: object}
steps:
  - id: each
    for_each: "${input.n}"
    tool: data.echo
    with: {value: {n: "${item}", blob: "${input.blob}"}}
output: "${steps.each.status}"
"""

SPIN = """
name: drill_spin
steps:
  - id: poll
    tool: data.echo
    with: {value: "${iteration}"}
    repeat: {until: "false", timeout: 365d, max_iterations: 5, every: 10ms}
"""


async def drill_bounds(stack: DrillStack, items: int) -> dict[str, Any]:
    from bench.drill import snapshot, start

    assert stack.client is not None
    started = time.perf_counter()
    handle = await stack.client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(
            definition=snapshot(LOCAL).definition,
            input={"n": list(range(items)), "blob": "x" * 3_000},
        ),
        id=f"bounds-local-{uuid.uuid4().hex[:8]}",
        task_queue=stack.task_queue,
    )
    local_ok = (await asyncio.wait_for(handle.result(), 600)).output == "succeeded"
    per_task = await _markers_per_task(handle)
    spin = await start(stack, snapshot(SPIN), "bounds-spin")
    try:
        await asyncio.wait_for(spin.result(), 120)
        spin_ended = "completed"
    except WorkflowFailureError as err:
        spin_ended = str(err.cause)
    url = await stack.start_api()
    refused, terminated = await _through_api(stack, url)
    stack.stop_api()
    return {
        "local_items": items,
        "local_completed": local_ok,
        "most_local_results_in_one_task": max(per_task, default=0),
        "loop_ended": spin_ended,
        "too_many_units_status": refused,
        "stuck_run_after_cancel": terminated,
        "seconds": round(time.perf_counter() - started, 2),
        "ok": local_ok
        and max(per_task, default=0) <= LOCAL_CALLS_PER_TASK
        and "did not hold within 5 iterations" in spin_ended
        and refused == 422
        and terminated == "TERMINATED",
    }


async def _markers_per_task(handle: Any) -> list[int]:
    per_task: list[int] = []
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            per_task.append(0)
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and per_task:
            per_task[-1] += 1
    return per_task


async def _through_api(stack: DrillStack, url: str) -> tuple[int, str]:
    """A definition with three 1,000-item for_each steps, and the cancel of a run whose every
    workflow task fails (a state it cannot read): the API refuses the first and ends the second
    within its grace."""
    assert stack.client is not None
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    wide = {
        "name": "wide",
        "input": {"type": "object"},
        "steps": [
            {"id": f"s{i}", "tool": "data.echo", "for_each": "${input.n}", "with": {"value": 1}}
            for i in range(3)
        ],
    }
    stuck_def = Definition.model_validate(
        {"name": "x", "steps": [{"id": "a", "tool": "data.echo"}]}
    )
    stuck = await stack.client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(definition=stuck_def, resume={"steps": "not a state"}),
        id=f"bounds-stuck-{uuid.uuid4().hex[:8]}",
        task_queue=stack.task_queue,
    )
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        r = await http.post(
            "/workflows", json={"definition": wide, "input": {"n": []}}, headers=headers
        )
        refused = r.status_code
        await http.post(f"/workflows/{stuck.id}/cancel", json={}, headers=headers)
    deadline = time.monotonic() + 60
    status = WorkflowExecutionStatus.RUNNING
    while status == WorkflowExecutionStatus.RUNNING and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = (await stuck.describe()).status or WorkflowExecutionStatus.RUNNING
    return refused, status.name
