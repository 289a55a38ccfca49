"""Throughput: five-step runs completed per second when many start at once, the pipeline as it
runs by default (`data.echo` as local activities) against the hand-written baseline calling local
activities, on the same workers, with the CPU each process spent per run."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from temporalio.client import WorkflowHandle

from bench.baseline import LocalBaselineWorkflow
from bench.pipelines import RUN_TIMEOUT, START_CONCURRENCY, linear, start_many
from bench.scale import Scale
from bench.stack import Stack, cpu_seconds

Starter = Callable[[list[str]], Awaitable[list[WorkflowHandle[Any, Any]]]]


async def timed(stack: Stack, scale: Scale, ids: list[str], start: Starter) -> dict[str, Any]:
    """Completed runs / seconds from the first start to the last completion, and the CPU each
    process spent meanwhile, per run."""
    cpu_before = cpu_seconds(stack)
    started = time.perf_counter()
    async with asyncio.timeout(scale.section_timeout_s):
        handles = await start(ids)
        started_s = time.perf_counter() - started
        # Result long-polls carry no work of their own; waiting on all of them at once is cheap.
        await asyncio.gather(*(h.result() for h in handles))
    elapsed = time.perf_counter() - started
    used = {k: v - cpu_before[k] for k, v in cpu_seconds(stack).items()}
    return {
        "runs": len(handles),
        "seconds": round(elapsed, 3),
        "start_seconds": round(started_s, 3),
        "per_second": round(len(handles) / elapsed, 2),
        # Where the machine's cores went: tells a slow worker from a slow server.
        "cpu_ms_per_run": {k: round(v * 1000 / len(handles), 2) for k, v in used.items()},
        "cores_busy": round(sum(used.values()) / elapsed, 2),
    }


def bound_by(out: dict[str, Any]) -> str:
    """What limits a throughput run, from what it measured: the busiest process, and whether
    the cores were all in use (the CPU is the bound) or not (waiting is)."""
    cpu = out["cpu_ms_per_run"]
    busiest = max(cpu, key=cpu.get)
    share = cpu[busiest] / max(sum(cpu.values()), 1e-9)
    cores = os.cpu_count() or 1
    limit = "all cores busy" if out["cores_busy"] >= 0.9 * cores else "cores idle part of the time"
    return (
        f"{busiest} {share:.0%} of the CPU; {out['cores_busy']:.2f} of {cores} cores busy ({limit})"
    )


async def measure(
    stack: Stack, scale: Scale, label: str, first: Literal["pipeline", "baseline"]
) -> dict[str, Any]:
    """As many pipeline runs as baseline runs, one side after the other, on the workers running
    now."""
    definition = linear("bench-throughput")
    tag = uuid.uuid4().hex[:6]
    n = scale.throughput_runs

    async def pipelines(ids: list[str]) -> list[WorkflowHandle[Any, Any]]:
        return list(await start_many(stack.client, stack.task_queue, definition, ids))

    async def baselines(ids: list[str]) -> list[WorkflowHandle[Any, Any]]:
        limit = asyncio.Semaphore(START_CONCURRENCY)

        async def one(i: int, workflow_id: str) -> WorkflowHandle[Any, Any]:
            async with limit:
                return await stack.client.start_workflow(
                    LocalBaselineWorkflow.run,
                    {"value": i},
                    id=workflow_id,
                    task_queue=stack.task_queue,
                    execution_timeout=RUN_TIMEOUT,
                )

        return list(await asyncio.gather(*(one(i, w) for i, w in enumerate(ids))))

    pipe_ids = [f"{stack.task_queue}-tp{label}-{tag}-{i}" for i in range(n)]
    base_ids = [f"{stack.task_queue}-tb{label}-{tag}-{i}" for i in range(n)]
    # Which side goes first alternates between sections, so drift in the machine's load does
    # not always favour the same one.
    if first == "pipeline":
        pipe = await timed(stack, scale, pipe_ids, pipelines)
        base = await timed(stack, scale, base_ids, baselines)
    else:
        base = await timed(stack, scale, base_ids, baselines)
        pipe = await timed(stack, scale, pipe_ids, pipelines)
    return {
        "per_second": pipe["per_second"],
        "baseline_per_second": base["per_second"],
        "ratio": round(pipe["per_second"] / base["per_second"], 3),
        "bound": bound_by(pipe),
        "pipeline": pipe,
        "baseline": base,
    }
