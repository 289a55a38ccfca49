"""`python -m bench.recovery`: does a large for_each run finish after its worker dies part-way?

A fresh worker has to replay the run's history within one workflow task before the run can move
again; Temporal times a workflow task out after 10 s (its default) and gives it again, from the
start. This starts one fan-out on a private stack, SIGKILLs the worker once a share of the items
is done, starts another worker and waits, bounded, for the result. It prints whether the run
finished, how long it took after the restart and which workflow tasks timed out meanwhile.
`--baseline` runs the hand-written fan-out through the same crash, as a control.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import WorkflowHandle

from bench.baseline_dynamic import FanOutBaselineWorkflow, FanOutInput
from bench.dynamic_runs import echoed, fanout_definition
from bench.pipelines import RUN_TIMEOUT, pipeline_input, poll
from bench.stack import open_stack, start_worker
from tests.support.procs import Processes
from workflows.pipeline import PipelineWorkflow

# Progress is read from the history (completed calls), the same way for both workflows.
PROGRESS_POLL_S = 0.5


async def drill(
    workdir: Path, items: int, parallel: int, at: float, wait_s: float, baseline: bool
) -> dict[str, Any]:
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir)
        first = await start_worker(stack, "worker-1")
        handle: WorkflowHandle[Any, Any]
        if baseline:
            handle = await stack.client.start_workflow(
                FanOutBaselineWorkflow.run,
                FanOutInput(items=items, parallel=parallel),
                id=f"{stack.task_queue}-recovery-baseline",
                task_queue=stack.task_queue,
                execution_timeout=RUN_TIMEOUT,
            )
        else:
            handle = await stack.client.start_workflow(
                PipelineWorkflow.run,
                pipeline_input(fanout_definition(parallel), list(range(items))),
                id=f"{stack.task_queue}-recovery",
                task_queue=stack.task_queue,
                execution_timeout=RUN_TIMEOUT,
            )

        async def far_enough() -> bool:
            events = (await handle.fetch_history()).events
            done = sum(e.HasField("activity_task_completed_event_attributes") for e in events)
            return done >= at * items

        await poll(far_enough, PROGRESS_POLL_S, wait_s)
        done_before = len((await handle.fetch_history()).events)
        os.killpg(first.pid, signal.SIGKILL)  # a crash: nothing drains, the cache is gone
        procs.stop(first)
        stack.workers.remove(first)
        await start_worker(stack, "worker-2")
        restarted = time.perf_counter()
        finished: float | None = None
        try:
            async with asyncio.timeout(wait_s):
                result = await handle.result()
            finished = time.perf_counter() - restarted
            output = result.outputs if baseline else result.output
            if output != echoed(items):
                raise RuntimeError(f"the run returned {str(output)[:200]}")
        except TimeoutError:
            pass
        history = await handle.fetch_history()
        pending = (await handle.describe()).raw_description.pending_workflow_task
        return {
            "workflow": "FanOutBaselineWorkflow" if baseline else "PipelineWorkflow",
            "items": items,
            "parallel": parallel,
            "killed_at_events": done_before,
            "finished_s_after_restart": None if finished is None else round(finished, 1),
            "waited_s": wait_s,
            "workflow_tasks_timed_out": [
                TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
                for e in history.events
                if e.HasField("workflow_task_timed_out_event_attributes")
            ],
            "pending_workflow_task_attempt": pending.attempt if finished is None else None,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--parallel", type=int, default=10, help="the step's max_parallel")
    parser.add_argument("--at", type=float, default=0.7, help="share of items done at the kill")
    parser.add_argument("--wait", type=float, default=180.0, help="seconds to wait for the end")
    parser.add_argument(
        "--baseline", action="store_true", help="the hand-written fan-out instead, as a control"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-recovery-"))
    (workdir / "definitions").mkdir()
    try:
        out = asyncio.run(
            drill(workdir, args.items, args.parallel, args.at, args.wait, args.baseline)
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out, indent=2))
    if out["finished_s_after_restart"] is None:
        print(
            f"NOT finished {args.wait:.0f} s after the restart: "
            f"workflow tasks timed out: {out['workflow_tasks_timed_out']}, the pending one is at "
            f"attempt {out['pending_workflow_task_attempt']}"
        )
        return 1
    print(f"finished {out['finished_s_after_restart']} s after the restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
