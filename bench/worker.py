"""`python -m bench.worker`: the real Stepgate worker plus the baselines, in one worker process.

Configured like `worker.py` through the environment (TEMPORAL_ADDRESS, STEPGATE_TASK_QUEUE, ...).
Touches `--ready-file` once it polls, so the bench knows when to start measuring.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.plugin import SimplePlugin

from activities import default_registry, tracing
from activities.config import get_settings
from activities.logs import configure_logging
from bench.baseline import BaselineWorkflow, GatedBaselineWorkflow, LocalBaselineWorkflow, noop
from bench.baseline_dynamic import FanOutBaselineWorkflow, LoopBaselineWorkflow
from worker import build_worker, workflow_runner
from workflows.builds import package_version
from workflows.client import make_client
from workflows.tracing import interceptors

# The baselines run on the same workflow runner as Stepgate's workflows (outside the sandbox), so
# the comparison measures the interpreter, not a setting.
BASELINE = SimplePlugin(
    "stepgate.bench.baseline",
    workflows=[
        BaselineWorkflow,
        LocalBaselineWorkflow,
        GatedBaselineWorkflow,
        FanOutBaselineWorkflow,
        LoopBaselineWorkflow,
    ],
    activities=[noop],
    workflow_runner=lambda _: workflow_runner(),
)


def with_baseline(client: Client) -> Client:
    """The same connection and converter, plus a plugin that adds the baseline to every worker
    built on it: build_worker() then gives one worker (shared pollers, slots and cache) for both,
    which two Worker objects on one task queue could not (the SDK refuses that)."""
    config = client.config()
    config["plugins"] = [*config.get("plugins", []), BASELINE]
    return Client(**config)


async def serve(ready_file: Path | None) -> int:
    settings = get_settings()
    configure_logging(settings)
    # Traced as worker.py is when OTEL_* asks for it, so the bench can measure what that costs.
    traces = tracing.configure("stepgate-worker", package_version())
    client = with_baseline(await make_client(settings, interceptors=interceptors(traces)))
    worker = build_worker(client, settings, default_registry(entry_points=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        if ready_file is not None:
            await asyncio.to_thread(ready_file.write_text, worker.task_queue)
        await stop.wait()
    tracing.flush()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args()
    return asyncio.run(serve(args.ready_file))


if __name__ == "__main__":
    sys.exit(main())
