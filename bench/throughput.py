"""Throughput: how many five-step pipelines complete per second when many start at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.pipelines import linear, start_many
from bench.scale import Scale
from bench.stack import Stack, cpu_seconds


async def measure(stack: Stack, scale: Scale, label: str) -> dict[str, Any]:
    """Completed runs / seconds from the first start to the last completion."""
    definition = linear("bench-throughput")
    tag = uuid.uuid4().hex[:6]
    ids = [f"{stack.task_queue}-tp{label}-{tag}-{i}" for i in range(scale.throughput_runs)]
    cpu_before = cpu_seconds(stack)
    started = time.perf_counter()
    async with asyncio.timeout(scale.section_timeout_s):
        handles = await start_many(stack.client, stack.task_queue, definition, ids)
        started_s = time.perf_counter() - started
        # Result long-polls carry no work of their own; waiting on all of them at once is cheap.
        await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - started
    # Where the machine's two cores went during the run: tells a slow worker from a slow server.
    cpu = {k: round(v - cpu_before[k], 2) for k, v in cpu_seconds(stack).items()}
    return {
        "cpu_s": cpu,
        "runs": len(handles),
        "seconds": round(elapsed, 3),
        "start_seconds": round(started_s, 3),
        "per_second": round(len(handles) / elapsed, 2),
    }
