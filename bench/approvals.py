"""`python -m bench.approvals`: the parked section's approvals alone, on a stack of its own.

Parks `--runs` runs (default: the full scale's 10,000) on scripts/dev-server with its SQLite file
(`--store memory` for the in-memory server), approves them all through POST /approvals/batch as
the bench does, and prints seconds, the worker's peak RSS and the CPU each process spent per run.
`--profile` records the worker with py-spy while it approves (a flame graph and the top frames in
bench/results/profile-approvals.*). Used to find where the time goes without the whole bench.
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

from bench.parked import DONE_QUERY, INBOX_QUERY, PIPELINE, PeakRss, approve_all
from bench.pipelines import BENCH_ROLE, linear, start_many, wait_parked
from bench.procs import Processes
from bench.report import RESULTS
from bench.scale import FULL
from bench.stack import (
    ROOT,
    STORES,
    Store,
    cpu_seconds,
    open_stack,
    start_api,
    start_worker,
)

TIMEOUT_S = 1_800.0


async def measure(workdir: Path, runs: int, store: Store, profile: bool) -> dict[str, Any]:
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, store=store)
        worker, _ = await asyncio.gather(start_worker(stack, "worker-1"), start_api(stack))
        ids = [f"{stack.task_queue}-parked-{uuid.uuid4().hex[:6]}-{i}" for i in range(runs)]
        out: dict[str, Any] = {"runs": runs, "store": store, "load_average": os.getloadavg()}
        async with asyncio.timeout(TIMEOUT_S), PeakRss(worker) as peak:
            started = time.perf_counter()
            await start_many(
                stack.client, stack.task_queue, linear(PIPELINE, gate_role=BENCH_ROLE), ids
            )
            await wait_parked(stack.client, INBOX_QUERY, runs, TIMEOUT_S)
            out["park_s"] = round(time.perf_counter() - started, 2)
            spy = None
            if profile:
                RESULTS.mkdir(parents=True, exist_ok=True)
                spy = procs.spawn(
                    "py-spy",
                    [
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
                    ],
                    os.environ,
                    ROOT,
                )
            before = cpu_seconds(stack)
            started = time.perf_counter()
            codes = await approve_all(stack, ids)
            out["approve_all_s"] = round(time.perf_counter() - started, 2)
            used = {k: v - before[k] for k, v in cpu_seconds(stack).items()}
            if spy is not None:
                spy.popen.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                await asyncio.to_thread(spy.popen.wait, 60)
            # Only the approved runs complete: waiting for all would wait out TIMEOUT_S.
            await wait_parked(stack.client, DONE_QUERY, codes.get(200, 0), TIMEOUT_S)
            out["approve_to_completed_s"] = round(time.perf_counter() - started, 2)
        out["codes"] = codes
        out["approvals_per_s"] = round(runs / out["approve_all_s"], 1)
        out["worker_rss_mb_peak"] = peak.mb
        out["cpu_ms_per_run"] = {k: round(v * 1000 / runs, 2) for k, v in used.items()}
        # The SDK's warnings for workflow tasks that took over 5 s, and for completions the server
        # refused because the task had timed out (10 s) meanwhile: work done twice.
        log = worker.log.read_text(errors="replace")
        out["workflow_tasks_over_5s"] = log.count("TMPRL1104")
        out["workflow_tasks_timed_out"] = log.count("Workflow task not found")
        out["settings"] = {k: v for k, v in os.environ.items() if k.startswith("STEPGATE_MAX_")}
        return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.approvals")
    parser.add_argument("--runs", type=int, default=FULL.parked_runs)
    parser.add_argument("--store", choices=STORES, default=STORES[0])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-approvals-"))
    (workdir / "definitions").mkdir()
    store = next(s for s in STORES if s == args.store)
    result = asyncio.run(measure(workdir, args.runs, store, args.profile))
    print(json.dumps(result, indent=2))
    return 0 if result["codes"] == {200: args.runs} else 1


if __name__ == "__main__":
    sys.exit(main())
