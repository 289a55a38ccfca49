"""What one parked run costs, beside what it costs to approve: the worker memory each cached
parked run holds, the history it wrote before its gate, and the CPU a replay of that history
takes (what a worker spends on a run it no longer caches before it can take the decision).

Used by `python -m bench.approvals`, for Stepgate's runs and for the hand-written baseline's, so
both are measured the same way and printed side by side as ratios.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from activities.config import Settings
from bench.baseline import GatedBaselineWorkflow
from bench.stack import ROOT
from worker import workflow_runner
from workflows.client import make_data_converter
from workflows.pipeline import PipelineWorkflow

# Replays of each parked run's history per round: enough that the replayer's own start is spread
# thin; the first round only warms caches, and each kind's best round counts.
REPLAYS = 300
REPLAY_ROUNDS = 5


def per_cached_run_kib(rss_before: int, rss_parked: int, runs: int) -> float:
    """The worker's resident memory per run it caches: what parking `runs` more runs added."""
    return round((rss_parked - rss_before) / 1024 / max(runs, 1), 1)


def history_shape(history: WorkflowHistory) -> dict[str, Any]:
    """Events of a parked run's history by type, with the bytes each kind takes."""
    kinds: dict[str, dict[str, int]] = {}
    for event in history.events:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        kind = kinds.setdefault(name, {"count": 0, "bytes": 0})
        kind["count"] += 1
        kind["bytes"] += event.ByteSize()
    return {
        "events": len(history.events),
        "bytes": sum(k["bytes"] for k in kinds.values()),
        "by_type": kinds,
    }


async def _repeat(history: WorkflowHistory, times: int) -> AsyncIterator[WorkflowHistory]:
    for _ in range(times):
        yield history


async def replay_each(histories: dict[str, WorkflowHistory]) -> dict[str, float]:
    """CPU milliseconds this process spends per replay of each history, with the worker's
    workflow runner: REPLAYS replays of one, then of the next, for REPLAY_ROUNDS rounds after
    one that warms caches, each kind's best round (other work on the machine only ever adds to
    a round, and alternating gives every kind the same machine)."""
    replayer = Replayer(
        workflows=[PipelineWorkflow, GatedBaselineWorkflow],
        data_converter=make_data_converter(Settings()),
        workflow_runner=workflow_runner(),
    )
    best: dict[str, float] = {}
    for round_ in range(REPLAY_ROUNDS + 1):
        for name, history in histories.items():
            times = REPLAYS // 10 if round_ == 0 else REPLAYS
            started = time.process_time()
            await replayer.replay_workflows(_repeat(history, times), raise_on_replay_failure=True)
            spent = (time.process_time() - started) * 1000 / times
            if round_ > 0:
                best[name] = min(best.get(name, spent), spent)
    return {name: round(ms, 3) for name, ms in best.items()}


async def keep_parked_run(client: Client, workflow_id: str, where: Path) -> dict[str, Any]:
    """One parked run's history shape; the history itself is written to `where` for
    `replay_apart`."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    await asyncio.to_thread(where.write_text, history.to_json())
    return {"history": history_shape(history)}


async def replay_apart(paths: dict[str, Path]) -> dict[str, float]:
    """`replay_each` over the histories kept at `paths`, in a fresh process of its own: the
    bench's process holds a client, threads and a heap that would count in its CPU time."""
    argv = [sys.executable, "-m", "bench.parked_cost", *(f"{k}={v}" for k, v in paths.items())]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"replaying the parked runs failed: {err.decode()[-2000:]}")
    found: dict[str, float] = json.loads(out)
    return found


def ratios(stepgate: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """The three figures a parked Stepgate run is held to, each as a ratio of the baseline's:
    approvals per second (at least 0.9), worker RSS per cached parked run and the CPU of
    replaying a parked run (at most 1.3 and 1.2)."""
    return {
        "approvals_per_s_vs_baseline": round(
            stepgate["approvals_per_s"] / baseline["approvals_per_s"], 3
        ),
        "rss_per_cached_run_vs_baseline": round(
            stepgate["worker_rss_kib_per_cached_run"] / baseline["worker_rss_kib_per_cached_run"],
            3,
        ),
        "replay_vs_baseline": round(
            stepgate["parked_run"]["replay_ms"] / baseline["parked_run"]["replay_ms"], 3
        ),
    }


def main(argv: list[str]) -> int:
    """`python -m bench.parked_cost NAME=HISTORY.json ...`: replay_each's figures as JSON."""
    paths = dict(arg.split("=", 1) for arg in argv)
    histories = {
        name: WorkflowHistory.from_json(name, Path(path).read_text())
        for name, path in paths.items()
    }
    print(json.dumps(asyncio.run(replay_each(histories))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
