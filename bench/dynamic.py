"""Dynamic pipelines against hand-written Temporal workflows, measured in the same bench run.

- fan-out: one `for_each` over N `data.echo` calls, `max_parallel` at once, against one run of a
  workflow making N no-op calls under a semaphore of the same size: wall seconds from start to
  result, history events over every run of the workflow id (the pipeline may continue as new),
  and what replaying the largest run costs (a worker restart, a cache eviction, a status query on
  the closed run all replay it);
- repeat: a `repeat` step whose `until` holds after N iterations, against a loop calling the
  no-op N times and checking the same condition after each call. Per iteration: the time between
  two consecutive calls as the server recorded them. Then the same with a durable wait between
  calls (`every` against `workflow.sleep`).

`python -m bench.dynamic` runs this section alone on a stack of its own (BENCH_SCALE applies).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import histories, report_dynamic
from bench.baseline import NOOP
from bench.baseline_dynamic import FanOutBaselineWorkflow
from bench.cells import render
from bench.dynamic_runs import ECHO, Runner
from bench.report import RESULTS
from bench.scale import Scale, scale_from_env
from bench.stack import Stack, cpu_seconds, open_stack, start_worker
from bench.stats import Summary
from tests.support.procs import Processes
from workflows.pipeline import PipelineWorkflow

# Temporal's defaults (limit.historyCount.error, limit.historyCount.suggestContinueAsNew, and the
# workflow task timeout a run gets when its starter sets none): a run whose history reaches the
# first fails; past the second the server suggests continuing as new; a workflow task (a replay
# included) that takes longer than the third is given again to a worker, from the start.
HISTORY_EVENTS_LIMIT = 51_200
HISTORY_EVENTS_SUGGEST = 4_096
WORKFLOW_TASK_TIMEOUT_S = 10.0
WARMUP_ITEMS = 10
WARMUP_ITERATIONS = 3
# A status query on a closed run waits for a worker to replay it; past this it counts as failed.
STATUS_QUERY_LIMIT = timedelta(seconds=60)


async def timed(stack: Stack, run: Awaitable[str]) -> tuple[float, dict[str, float], str]:
    """Wall seconds and each process's CPU seconds of one run, and what the run returned."""
    cpu_before = cpu_seconds(stack)
    started = time.perf_counter()
    out = await run
    elapsed = time.perf_counter() - started
    cpu = {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in cpu_seconds(stack).items()}
    return elapsed, cpu, out


def mean_cpu(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r.get(k, 0.0) for r in runs) / len(runs), 2) for k in runs[0]}


async def status_query(
    stack: Stack, workflow_id: str
) -> tuple[float | None, int | None, str | None]:
    """Seconds a status query on the closed run took, its `continued`, or why it failed."""
    handle = stack.client.get_workflow_handle(workflow_id)
    started = time.perf_counter()
    try:
        status = await handle.query(PipelineWorkflow.status, rpc_timeout=STATUS_QUERY_LIMIT)
    except Exception as err:  # a timeout here is a finding to report, not a crash of the bench
        return None, None, f"{type(err).__name__}: {err}"
    return time.perf_counter() - started, status.continued, None


async def fanout(stack: Stack, scale: Scale, runner: Runner) -> dict[str, Any]:
    items, parallel = scale.fanout_items, scale.fanout_parallel
    # A small run of each first loads both workflows into the sandbox's module cache, and gives
    # the replays below a warm-up run each.
    warm_p = await runner.fanout_pipeline(WARMUP_ITEMS, parallel, "fanout-warm-p")
    warm_b = await runner.fanout_baseline(WARMUP_ITEMS, parallel, "fanout-warm-b")
    # Pairs swap which side goes first, so drift in machine load hits both alike; the figures
    # are each side's median seconds and mean CPU, the histories those of the first pair.
    seconds: dict[str, list[float]] = {"pipeline": [], "baseline": []}
    cpus: dict[str, list[dict[str, float]]] = {"pipeline": [], "baseline": []}
    first: dict[str, str] = {}
    for i in range(scale.fanout_pairs):
        for side in ("pipeline", "baseline") if i % 2 == 0 else ("baseline", "pipeline"):
            start = runner.fanout_pipeline if side == "pipeline" else runner.fanout_baseline
            what = f"fanout-{side[0]}{i}"
            elapsed, cpu, run_id = await timed(stack, start(items, parallel, what))
            seconds[side].append(elapsed)
            cpus[side].append(cpu)
            first.setdefault(side, run_id)
    pipe_s, base_s = (Summary.of(seconds[side]).p50 for side in ("pipeline", "baseline"))
    pipe_id, base_id, base_run = runner.id("fanout-p0"), runner.id("fanout-b0"), first["baseline"]
    chain = await histories.run_chain(stack.client, pipe_id, first["pipeline"])
    (base,) = await histories.run_chain(stack.client, base_id, base_run)
    query_s, continued, query_error = await status_query(stack, pipe_id)
    if continued is not None and continued != len(chain) - 1:
        raise RuntimeError(
            f"{pipe_id}: status says {continued} continues, histories {len(chain) - 1}"
        )
    largest = max(chain, key=lambda r: r.events)

    async def replay(workflow_id: str, run_id: str, workflow: type) -> float:
        handle = stack.client.get_workflow_handle(workflow_id, run_id=run_id)
        return await histories.replay_cpu_s(await handle.fetch_history(), [workflow])

    await replay(runner.id("fanout-warm-p"), warm_p, PipelineWorkflow)
    await replay(runner.id("fanout-warm-b"), warm_b, FanOutBaselineWorkflow)
    events = sum(r.events for r in chain)
    suggested = [r.suggested_at for r in chain if r.suggested_at is not None]
    return {
        "fanout_items": items,
        "fanout_parallel": parallel,
        "fanout_pairs": scale.fanout_pairs,
        "fanout_pipeline_s": round(pipe_s, 2),
        "fanout_baseline_s": round(base_s, 2),
        "fanout_seconds": {k: [round(v, 2) for v in vs] for k, vs in seconds.items()},
        "fanout_ratio": round(pipe_s / base_s, 2),
        "fanout_events": events,
        "fanout_baseline_events": base.events,
        "fanout_events_ratio": round(events / base.events, 2),
        "fanout_runs": len(chain),
        "fanout_largest_run_events": largest.events,
        "fanout_suggested_at": min(suggested, default=None),
        "fanout_events_suggest": HISTORY_EVENTS_SUGGEST,
        "fanout_events_limit": HISTORY_EVENTS_LIMIT,
        "fanout_chain": [r.as_dict() for r in chain],
        "fanout_largest_input_kib": round(max(r.input_bytes for r in chain) / 1024, 1),
        "fanout_baseline_size_bytes": base.size_bytes,
        "fanout_cpu_s": {side: mean_cpu(used) for side, used in cpus.items()},
        "fanout_replay_s": round(await replay(pipe_id, largest.run_id, PipelineWorkflow), 2),
        "fanout_baseline_replay_s": round(
            await replay(base_id, base_run, FanOutBaselineWorkflow), 2
        ),
        "fanout_workflow_task_timeout_s": WORKFLOW_TASK_TIMEOUT_S,
        "fanout_status_query_s": None if query_s is None else round(query_s, 2),
        "fanout_status_query_error": query_error,
    }


async def loops(
    runner: Runner, iterations: int, every_ms: int, pairs: int, label: str
) -> dict[str, Any]:
    """Pairs of runs, pipeline and baseline swapping which goes first, as in overhead.py; every
    gap between two consecutive calls of a run is one iteration."""
    pipe: list[float] = []
    base: list[float] = []
    for i in range(pairs):
        for side in ("p", "b") if i % 2 == 0 else ("b", "p"):
            if side == "p":
                history = await runner.repeat_pipeline(iterations, every_ms, f"{label}-p{i}")
                pipe += histories.gaps_ms(histories.scheduled_ms(history, ECHO))
            else:
                history = await runner.repeat_baseline(iterations, every_ms, f"{label}-b{i}")
                base += histories.gaps_ms(histories.scheduled_ms(history, NOOP))
    p, b = Summary.of(pipe), Summary.of(base)
    return {
        label: {
            "iterations": iterations,
            "every_ms": every_ms,
            "pairs": pairs,
            "pipeline_ms": p.as_dict(),
            "baseline_ms": b.as_dict(),
            "overhead_ms_p50": round(p.p50 - b.p50, 2),
        },
        f"{label}_ms_p50": round(p.p50, 2),
        f"{label}_baseline_ms_p50": round(b.p50, 2),
        f"{label}_ratio": round(p.p50 / b.p50, 3),
    }


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    runner = Runner(stack, scale.section_timeout_s)
    out: dict[str, Any] = {}
    async with asyncio.timeout(scale.section_timeout_s):
        await runner.repeat_pipeline(WARMUP_ITERATIONS, 0, "repeat-warm-p")
        await runner.repeat_baseline(WARMUP_ITERATIONS, 0, "repeat-warm-b")
        out |= await loops(runner, scale.repeat_iterations, 0, scale.repeat_pairs, "repeat")
        out |= await loops(
            runner,
            scale.repeat_every_iterations,
            scale.repeat_every_ms,
            scale.repeat_every_pairs,
            "repeat_every",
        )
        out |= await fanout(stack, scale, runner)
    return out


async def alone(scale: Scale, workdir: Path, config: dict[str, object]) -> dict[str, Any]:
    """This section on a stack of its own: server, one worker."""
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, config=config)
        await start_worker(stack, "worker-1")
        started = time.perf_counter()
        results = await measure(stack, scale)
        results["section_s"] = {"dynamic": round(time.perf_counter() - started, 2)}
        return results


def main() -> int:
    scale = scale_from_env()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=scale.fanout_items, help="for_each items")
    parser.add_argument("--parallel", type=int, default=scale.fanout_parallel, help="max_parallel")
    parser.add_argument(
        "--suggest-events",
        type=int,
        default=None,
        help="the server suggests continuing as new past this many events (Temporal: 4096)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=scale.section_timeout_s,
        help="seconds the whole section may take (a larger fan-out needs more)",
    )
    args = parser.parse_args()
    scale = dataclasses.replace(
        scale,
        fanout_items=args.items,
        fanout_parallel=args.parallel,
        section_timeout_s=args.timeout,
    )
    config: dict[str, object] = {}
    if args.suggest_events is not None:
        config["limit.historyCount.suggestContinueAsNew"] = args.suggest_events
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-dynamic-"))
    (workdir / "definitions").mkdir()
    try:
        results = asyncio.run(alone(scale, workdir, config))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results |= {"scale": scale.name, "server_config": config}
    out = RESULTS / "dynamic.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(render(report_dynamic.rows(results)))
    print(f"\nsection {results['section_s']['dynamic']} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
