"""Step overhead: the interpreter against a hand-written baseline, run by run, interleaved.

Runs go one at a time so each measures latency, not queuing. Pipeline and baseline alternate
(and swap which goes first every pair) so drift in machine load hits both sides alike; the
per-step overhead comes from each pair's difference, not from the difference of two medians.

Two comparisons, like for like: the pipeline as it runs by default (`data.echo` steps as local
activities) against the baseline calling local activities (the headline figures), then the
pipeline pinned to regular activities (`local: false`) against the baseline calling regular ones.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.baseline import STEPS, BaselineWorkflow, LocalBaselineWorkflow
from bench.pipelines import RUN_TIMEOUT, linear, pipeline_input
from bench.scale import Scale
from bench.stack import Stack
from bench.stats import Summary
from workflows.language.definition import Definition
from workflows.pipeline import PipelineWorkflow

RUN_LIMIT_S = 30.0


async def compare(
    stack: Stack, scale: Scale, definition: Definition, baseline_type: str, tag: str
) -> dict[str, Any]:
    """Interleaved pairs of one pipeline run and one `baseline_type` run; the figures."""
    client, queue = stack.client, stack.task_queue

    async def pipeline(i: int) -> float:
        started = time.perf_counter()
        async with asyncio.timeout(RUN_LIMIT_S):
            result = await client.execute_workflow(
                PipelineWorkflow.run,
                pipeline_input(definition, i),
                id=f"{queue}-{tag}-pipeline-{i}",
                task_queue=queue,
                execution_timeout=RUN_TIMEOUT,
            )
        elapsed = (time.perf_counter() - started) * 1000
        if result.output != {"value": i}:
            raise RuntimeError(f"pipeline run {i} returned {result.output!r}")
        return elapsed

    async def baseline(i: int) -> float:
        started = time.perf_counter()
        async with asyncio.timeout(RUN_LIMIT_S):
            result = await client.execute_workflow(
                baseline_type,
                {"value": i},
                id=f"{queue}-{tag}-baseline-{i}",
                task_queue=queue,
                execution_timeout=RUN_TIMEOUT,
            )
        elapsed = (time.perf_counter() - started) * 1000
        if result != {"value": i}:
            raise RuntimeError(f"baseline run {i} returned {result!r}")
        return elapsed

    async def pair(i: int) -> tuple[float, float]:
        if i % 2:
            b = await baseline(i)
            return await pipeline(i), b
        p = await pipeline(i)
        return p, await baseline(i)

    # Warm-up pairs load the sticky caches and the worker's first-run paths; they are not counted.
    for i in range(scale.warmup_pairs):
        await pair(-1 - i)
    pipe_ms: list[float] = []
    base_ms: list[float] = []
    deadline = time.monotonic() + scale.section_timeout_s
    for i in range(scale.overhead_pairs):
        if time.monotonic() > deadline:
            break
        p, b = await pair(i)
        pipe_ms.append(p)
        base_ms.append(b)
    pipe, base = Summary.of(pipe_ms), Summary.of(base_ms)
    per_step = Summary.of([(p - b) / STEPS for p, b in zip(pipe_ms, base_ms, strict=True)])
    return {
        "ratio": round(pipe.p50 / base.p50, 3),
        "pipeline_run_ms": pipe.as_dict(),
        "baseline_run_ms": base.as_dict(),
        "step_overhead_ms": per_step.as_dict(),
        # Raw pairs, in run order: a stall on the shared machine shows up as one bad pair.
        "pairs_ms": [[round(p, 1), round(b, 1)] for p, b in zip(pipe_ms, base_ms, strict=True)],
    }


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    local = await compare(
        stack, scale, linear("bench-linear"), LocalBaselineWorkflow.__name__, "ovl"
    )
    regular = await compare(
        stack, scale, linear("bench-linear-regular", local=False), BaselineWorkflow.__name__, "ovr"
    )
    per_step = local["step_overhead_ms"]
    return {
        "overhead_ratio": local["ratio"],
        "step_overhead_ms_p50": round(per_step["p50"], 2),
        "step_overhead_ms_p99": round(per_step["p99"], 2),
        "pipeline_run_ms": local["pipeline_run_ms"],
        "pipeline_run_ms_p50": local["pipeline_run_ms"]["p50"],
        "baseline_run_ms": local["baseline_run_ms"],
        "step_overhead_ms": per_step,
        "overhead_pairs_ms": local["pairs_ms"],
        "overhead_regular_ratio": regular["ratio"],
        "overhead_regular": regular,
    }
