"""`python -m bench.approvals`: the parked section's approvals alone, on a stack of its own.

Parks `--runs` runs (default: the full scale's 10,000) on scripts/dev-server with its SQLite file
(`--store memory` for the in-memory server), approves them all through POST /approvals/batch as
the bench does, and prints seconds, the worker's peak RSS and the CPU each process spent per run.
`--profile` records the worker with py-spy while it approves (a flame graph and the top frames in
bench/results/profile-approvals.*). Used to find where the time goes without the whole bench.
`--baseline` first parks and approves as many hand-written GatedBaselineWorkflow runs on the same
server, worker and API, approved straight through the Temporal client as many at once as the
API's batches keep in flight: the floor this machine sets with no interpreter and no API, and
Stepgate's approvals per second as a ratio of it.
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

from bench.parked import DONE_QUERIES, Kind, PeakRss, approve, park
from bench.pipelines import (
    wait_parked,
)
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
)
from tests.support.procs import Child, Processes

TIMEOUT_S = 1_800.0


async def measure(
    workdir: Path, runs: int, store: Store, profile: bool, baseline: bool = False
) -> dict[str, Any]:
    """Stepgate's approvals; with `baseline`, the hand-written ones first, on the same server,
    worker and API (the baseline first, so it never reads a store Stepgate's runs have grown)."""
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, store=store)
        worker, _ = await asyncio.gather(start_worker(stack, "worker-1"), start_api(stack))
        out: dict[str, Any] = {"runs": runs, "store": store}
        if baseline:
            out["baseline"] = await approve_phase(stack, worker, runs, "baseline", profile=False)
        out["stepgate"] = await approve_phase(stack, worker, runs, "stepgate", profile=profile)
        if baseline:
            ratio = out["stepgate"]["approvals_per_s"] / out["baseline"]["approvals_per_s"]
            out["approvals_per_s_vs_baseline"] = round(ratio, 3)
        out["settings"] = {k: v for k, v in os.environ.items() if k.startswith("STEPGATE_MAX_")}
        return out


async def approve_phase(
    stack: Stack, worker: Child, runs: int, kind: Kind, *, profile: bool
) -> dict[str, Any]:
    """Park `runs` runs of `kind`, approve them all, and say what it took."""
    ids = [f"{stack.task_queue}-{kind}-{uuid.uuid4().hex[:6]}-{i}" for i in range(runs)]
    out: dict[str, Any] = {
        "workflow": "GatedBaselineWorkflow" if kind == "baseline" else "PipelineWorkflow",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    log_before = worker.log.read_text(errors="replace")
    async with asyncio.timeout(TIMEOUT_S), PeakRss(worker) as peak:
        started = time.perf_counter()
        await park(stack, kind, ids, TIMEOUT_S)
        out["park_s"] = round(time.perf_counter() - started, 2)
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
        await wait_parked(stack.client, DONE_QUERIES[kind], codes.get(200, 0), TIMEOUT_S)
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
    phases = [result[k] for k in ("baseline", "stepgate") if k in result]
    return 0 if all(p["codes"] == {200: args.runs} for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
