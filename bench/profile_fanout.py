"""`python -m bench.profile_fanout`: where a large for_each's workflow time goes.

Runs one fan-out of `data.echo` on a private stack, then replays its history here, sampled with
pyinstrument (as `python -m bench.profile` does for five-step runs). Writes
bench/results/profile-fanout.txt and prints the replay's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pyinstrument import Profiler
from temporalio.worker import Replayer

from activities.config import Settings
from bench.dynamic_runs import Runner
from bench.profile import views
from bench.report import RESULTS
from bench.stack import open_stack, start_worker
from tests.support.procs import Processes
from workflows.client import make_data_converter
from workflows.pipeline import PipelineWorkflow

RUN_LIMIT_S = 900.0


async def profile(workdir: Path, items: int, parallel: int) -> str:
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir)
        await start_worker(stack, "worker-1")
        runner = Runner(stack, RUN_LIMIT_S)
        run_id = await runner.fanout_pipeline(items, parallel, "profile")
        handle = stack.client.get_workflow_handle(runner.id("profile"), run_id=run_id)
        history = await handle.fetch_history()
    # debug_mode runs activations inline on this thread, so one profiler sees the SDK's side and
    # the workflow's, and it has no deadlock detection for the profiler's slowed activations
    # to trip (a worker fails an activation after 2 s).
    replayer = Replayer(
        workflows=[PipelineWorkflow],
        data_converter=make_data_converter(Settings()),
        debug_mode=True,
    )
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    started = time.process_time()
    await replayer.replay_workflow(history)
    cpu_s = time.process_time() - started
    profiler.stop()
    out = RESULTS / "profile-fanout.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(views(profiler))
    return (
        f"replaying a {items}-item fan-out (max_parallel {parallel}, {len(history.events)} "
        f"events): {cpu_s:.2f} s of CPU with the profiler attached; profile: {out}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--parallel", type=int, default=50, help="the step's max_parallel")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stepgate-profile-") as tmp:
        workdir = Path(tmp)
        (workdir / "definitions").mkdir()
        print(asyncio.run(profile(workdir, args.items, args.parallel)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
