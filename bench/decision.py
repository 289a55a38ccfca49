"""Decision latency: from the moment a decision is sent to the moment the gated step's tool starts.

Runs park at a `before` gate on s2, then get one decision each, one at a time (each run finishes
before the next decision, so no two measurements overlap). Timestamps:

- sent: the bench's wall clock just before the update/signal RPC (same host as the server).
- applied: the gate's `decided_at` from the `status` query, which is `workflow.now()` of the
  workflow task that took the decision: the workflow's own clock.
- step started: the history's ActivityTaskStarted event of s2's tool call, i.e. when the server
  handed the task to a worker. StepView.started_at cannot serve here: the step "starts" when its
  gate opens, before any decision, and the tool call's start is not in the status at all.

All three clocks are this machine's, so their differences are meaningful to well under 1 ms.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Literal

from temporalio.api.enums.v1 import EventType

from bench.pipelines import (
    GATED_STEP,
    PipelineHandle,
    approval,
    gate_open,
    linear,
    start_many,
)
from bench.scale import Scale
from bench.stack import Stack
from bench.stats import Summary
from workflows.pipeline import PipelineWorkflow

Via = Literal["update", "signal"]
DECISION_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
}
RUN_LIMIT_S = 30.0


async def tool_started_ns(handle: PipelineHandle) -> tuple[int, int]:
    """(scheduled, started) times in ns of the first tool call after the decision event."""
    seen_decision = False
    scheduled_id, scheduled_ns = None, 0
    async for event in handle.fetch_history_events():
        if event.event_type in DECISION_EVENTS:
            seen_decision = True
        elif (
            seen_decision
            and scheduled_id is None
            and event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ):
            scheduled_id, scheduled_ns = event.event_id, event.event_time.ToNanoseconds()
        elif (
            scheduled_id is not None
            and event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and event.activity_task_started_event_attributes.scheduled_event_id == scheduled_id
        ):
            return scheduled_ns, event.event_time.ToNanoseconds()
    raise RuntimeError(f"{handle.id}: no tool call started after the decision")


async def one_decision(handle: PipelineHandle, via: Via) -> dict[str, float]:
    decision = approval()
    sent_ns = time.time_ns()
    if via == "update":
        await handle.execute_update(PipelineWorkflow.submit_decision, decision)
    else:
        await handle.signal(PipelineWorkflow.decide, decision)
    acked_ns = time.time_ns()
    async with asyncio.timeout(RUN_LIMIT_S):
        await handle.result()
    scheduled_ns, started_ns = await tool_started_ns(handle)
    status = await handle.query(PipelineWorkflow.status)
    gate = next(s.gate for s in status.steps if s.id == GATED_STEP)
    if gate is None or gate.decided_at is None:
        raise RuntimeError(f"{handle.id}: gate {GATED_STEP} shows no decision")
    applied_ns = int(gate.decided_at.timestamp() * 1e9)
    return {
        "ack": (acked_ns - sent_ns) / 1e6,
        "applied": (applied_ns - sent_ns) / 1e6,
        "scheduled": (scheduled_ns - sent_ns) / 1e6,
        "started": (started_ns - sent_ns) / 1e6,
    }


async def measure_via(stack: Stack, scale: Scale, via: Via) -> dict[str, Any]:
    # Regular activities: "step started" is read from the ActivityTaskStarted event in history.
    definition = linear("bench-decision", gate_role="bench", local=False)
    tag = uuid.uuid4().hex[:6]
    ids = [f"{stack.task_queue}-{via}-{tag}-{i}" for i in range(scale.decision_runs)]
    deadline = time.monotonic() + scale.section_timeout_s
    handles = await start_many(stack.client, stack.task_queue, definition, ids)
    await asyncio.gather(*(gate_open(h, scale.section_timeout_s) for h in handles))
    samples: list[dict[str, float]] = []
    for handle in handles:
        if time.monotonic() > deadline:
            await handle.terminate("bench section ran out of time")
            continue
        samples.append(await one_decision(handle, via))
    return {k: Summary.of([s[k] for s in samples]).as_dict() for k in samples[0]}


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    update = await measure_via(stack, scale, "update")
    signal = await measure_via(stack, scale, "signal")
    return {
        "decision_latency_ms_p50": update["started"]["p50"],
        "decision_latency_ms_p99": update["started"]["p99"],
        "decision_latency_signal_ms_p50": signal["started"]["p50"],
        "decision_latency_signal_ms_p99": signal["started"]["p99"],
        "decision_ms": {"update": update, "signal": signal},
    }
