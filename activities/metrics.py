"""Stepgate's step metrics, recorded by each tool activity through the SDK's activity meter:
`stepgate_steps_total{tool,state}` and `stepgate_step_duration_seconds{tool}`. The tool is a
registry name (a bounded set); the state is completed, failed or cancelled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

STEPS = "stepgate_steps_total"
STEP_DURATION = "stepgate_step_duration_seconds"
STEP_BUCKETS: tuple[float, ...] = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 120, 600, 3_600)


@asynccontextmanager
async def step_measured(tool: str) -> AsyncIterator[None]:
    """Counts one tool call by how it ended and records how long it ran."""
    started = time.perf_counter()
    state = "failed"
    try:
        yield
        state = "completed"
    except asyncio.CancelledError:
        state = "cancelled"
        raise
    finally:
        if activity.in_activity():
            meter = activity.metric_meter()
            labels = {"tool": tool, "state": state}
            meter.create_counter(STEPS, "tool calls by how they ended").add(1, labels)
            meter.create_histogram_float(STEP_DURATION, "seconds one tool call ran", "s").record(
                time.perf_counter() - started, {"tool": tool}
            )
