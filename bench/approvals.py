"""`python -m bench.approvals`: the parked section's approvals alone, on a stack of its own.

Parks `--runs` runs (default: the full scale's 10,000) on scripts/dev-server with its SQLite file
(`--store memory` for the in-memory server), approves them all through POST /approvals/batch as
the bench does, and prints seconds, the worker's peak RSS and the CPU each process spent per run.
`--profile` records the worker with py-spy while it approves (a flame graph and the top frames in
bench/results/profile-approvals.*). Used to find where the time goes without the whole bench.
`--baseline` first parks and approves as many hand-written GatedBaselineWorkflow runs on the same
server and API, approved straight through the Temporal client as many at once as the API's
batches keep in flight: the floor this machine sets with no interpreter and no API. Each kind
runs on a worker process of its own (same code and settings), so neither's memory figures hold
the other's leftovers. Printed for each kind: the worker's RSS per cached parked run, the parked
run's history and the CPU of replaying it (bench/parked_cost.py: both kinds' histories in one
fresh process, in alternating rounds); with `--baseline`, Stepgate's approvals per second, RSS
per cached run and replay cost as ratios of the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from activities.config import Settings
from bench import parked_cost
from bench.parked import DONE_QUERIES, Kind, PeakRss, approve, park
from bench.pipelines import wait_parked
from bench.report import RESULTS
from bench.scale import FULL
from bench.stack import (
    ROOT,
    STORES,
    Stack,
    Store,
    cpu_seconds,
    open_stack,
    start_api,
    start_worker,
    stop_worker,
)
from tests.support.procs import Child, Processes

TIMEOUT_S = 1_800.0
# Runs of each kind parked and approved on a fresh worker before its idle RSS is read, so what
# only the first runs pay (imports done late, caches filled once) is not counted per run.
WARMUP_RUNS = 20


async def measure(
    workdir: Path, runs: int, store: Store, profile: bool, baseline: bool = False
) -> dict[str, Any]:
    """Stepgate's approvals; with `baseline`, the hand-written ones first, on the same server
    and API (the baseline first, so it never reads a store Stepgate's runs have grown), each
    kind on a fresh worker."""
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, store=store)
        await start_api(stack)
        out: dict[str, Any] = {"runs": runs, "store": store}
        kinds: list[Kind] = ["baseline", "stepgate"] if baseline else ["stepgate"]
        kept: dict[str, Path] = {kind: workdir / f"parked-{kind}.json" for kind in kinds}
        for kind in kinds:
            worker = await start_worker(stack, f"worker-{kind}")
            out[kind] = await approve_phase(
                stack, worker, runs, kind, kept[kind], profile=profile and kind == "stepgate"
            )
            await stop_worker(stack, worker)
        for name, ms in (await parked_cost.replay_apart(kept)).items():
            out[name]["parked_run"]["replay_ms"] = ms
        if baseline:
            out.update(parked_cost.ratios(out["stepgate"], out["baseline"]))
        out["settings"] = {k: v for k, v in os.environ.items() if k.startswith("STEPGATE_MAX_")}
        return out


async def approve_phase(
    stack: Stack, worker: Child, runs: int, kind: Kind, keep: Path, *, profile: bool
) -> dict[str, Any]:
    """Park `runs` runs of `kind`, approve them all, and say what it took; the last parked run's
    history is kept at `keep`."""
    tag = uuid.uuid4().hex[:6]
    ids = [f"{stack.task_queue}-{kind}-{tag}-{i}" for i in range(runs)]
    warm = [f"{stack.task_queue}-{kind}-{tag}-warm-{i}" for i in range(WARMUP_RUNS)]
    out: dict[str, Any] = {
        "workflow": "GatedBaselineWorkflow" if kind == "baseline" else "PipelineWorkflow",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    log_before = worker.log.read_text(errors="replace")
    async with asyncio.timeout(TIMEOUT_S):
        await park(stack, kind, warm, TIMEOUT_S)
        await approve(stack, kind, warm)
        await wait_parked(stack.client, DONE_QUERIES[kind], WARMUP_RUNS, TIMEOUT_S)
    rss_before = worker.rss_bytes()
    cached = min(runs, Settings().stepgate_max_cached_workflows)
    async with asyncio.timeout(TIMEOUT_S), PeakRss(worker) as peak:
        started = time.perf_counter()
        await park(stack, kind, ids, TIMEOUT_S)
        out["park_s"] = round(time.perf_counter() - started, 2)
        rss_parked = worker.rss_bytes()
        out["cached_runs"] = cached
        out["worker_rss_mb_idle"] = round(rss_before / 2**20, 1)
        out["worker_rss_mb_parked"] = round(rss_parked / 2**20, 1)
        out["worker_rss_kib_per_cached_run"] = parked_cost.per_cached_run_kib(
            rss_before, rss_parked, cached
        )
        out["parked_run"] = await parked_cost.keep_parked_run(stack.client, ids[-1], keep)
        spy = spawn_profiler(stack, worker) if profile else None
        before = cpu_seconds(stack)
        started = time.perf_counter()
        codes = await approve(stack, kind, ids)
        out["approve_all_s"] = round(time.perf_counter() - started, 2)
        used = {k: v - before[k] for k, v in cpu_seconds(stack).items()}
        if spy is not None:
            spy.popen.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            await asyncio.to_thread(spy.popen.wait, 60)
        # Only the approved runs complete: waiting for all would wait out TIMEOUT_S.
        done = WARMUP_RUNS + codes.get(200, 0)
        await wait_parked(stack.client, DONE_QUERIES[kind], done, TIMEOUT_S)
        out["approve_to_completed_s"] = round(time.perf_counter() - started, 2)
    out["codes"] = codes
    out["approvals_per_s"] = round(runs / out["approve_all_s"], 1)
    out["worker_rss_mb_peak"] = peak.mb
    out["cpu_ms_per_run"] = {k: round(v * 1000 / runs, 2) for k, v in used.items()}
    # The SDK's warnings for workflow tasks that took over 5 s, and for completions the server
    # refused because the task had timed out (10 s) meanwhile: work done twice.
    log = worker.log.read_text(errors="replace")[len(log_before) :]
    out["workflow_tasks_over_5s"] = log.count("TMPRL1104")
    out["workflow_tasks_timed_out"] = log.count("Workflow task not found")
    return out


def spawn_profiler(stack: Stack, worker: Child) -> Child:
    """py-spy on the worker until SIGINT, its raw samples in bench/results."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    argv = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(worker.pid),
        "--rate",
        "50",
        "--format",
        "raw",
        "--output",
        str(RESULTS / "profile-approvals.txt"),
    ]
    return stack.procs.spawn("py-spy", argv, os.environ, ROOT)


def summary(result: dict[str, Any]) -> str:
    """The three ratios a parked run is held to, each beside the figures it comes from."""
    s, b = result["stepgate"], result["baseline"]
    lines = [
        f"approvals/s: {s['approvals_per_s']} vs {b['approvals_per_s']}: "
        f"{result['approvals_per_s_vs_baseline']}x (target >= 0.9)",
        f"worker RSS per cached parked run ({s['cached_runs']} cached): "
        f"{s['worker_rss_kib_per_cached_run']} vs {b['worker_rss_kib_per_cached_run']} KiB: "
        f"{result['rss_per_cached_run_vs_baseline']}x (target <= 1.3)",
        f"replaying a parked run: {s['parked_run']['replay_ms']} vs "
        f"{b['parked_run']['replay_ms']} ms CPU: {result['replay_vs_baseline']}x (target <= 1.2)",
        f"load average at the start of each phase: {b['load_average']} / {s['load_average']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.approvals")
    parser.add_argument("--runs", type=int, default=FULL.parked_runs)
    parser.add_argument("--store", choices=STORES, default=STORES[0])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-approvals-"))
    (workdir / "definitions").mkdir()
    store = next(s for s in STORES if s == args.store)
    result = asyncio.run(measure(workdir, args.runs, store, args.profile, args.baseline))
    print(json.dumps(result, indent=2))
    if args.baseline:
        print(summary(result))
    phases = [result[k] for k in ("baseline", "stepgate") if k in result]
    return 0 if all(p["codes"] == {200: args.runs} for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
