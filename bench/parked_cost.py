"""What one parked run costs, beside what it costs to approve: the worker memory each cached
parked run holds, the history it wrote before its gate, and the CPU a replay of that history
takes (what a worker spends on a run it no longer caches before it can take the decision).

Used by `python -m bench.approvals`, for Stepgate's runs and for the hand-written baseline's, so
both are measured the same way and printed side by side as ratios.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from activities.config import Settings
from bench.baseline import GatedBaselineWorkflow
from worker import workflow_runner
from workflows.client import make_data_converter
from workflows.pipeline import PipelineWorkflow

# Replays of one parked run's history: enough that the replayer's own start is spread thin and
# a figure in milliseconds is steady to a few percent; the first round only warms caches.
REPLAYS = 300
REPLAY_ROUNDS = 3


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


async def replay_ms(history: WorkflowHistory, workflows: Sequence[type] | None = None) -> float:
    """CPU milliseconds this process spends per replay of `history`, replayed REPLAYS times
    in a row with the worker's workflow runner; the best of REPLAY_ROUNDS rounds after one
    that warms caches (other work on the machine only ever adds to a round)."""
    replayer = Replayer(
        workflows=list(workflows or (PipelineWorkflow, GatedBaselineWorkflow)),
        data_converter=make_data_converter(Settings()),
        workflow_runner=workflow_runner(),
    )
    await replayer.replay_workflows(_repeat(history, REPLAYS // 10), raise_on_replay_failure=True)
    best: float | None = None
    for _ in range(REPLAY_ROUNDS):
        started = time.process_time()
        await replayer.replay_workflows(_repeat(history, REPLAYS), raise_on_replay_failure=True)
        spent = (time.process_time() - started) * 1000 / REPLAYS
        best = spent if best is None else min(best, spent)
    return round(best or 0.0, 3)


async def parked_run(client: Client, workflow_id: str) -> dict[str, Any]:
    """One parked run's history shape and what replaying it costs."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {"history": history_shape(history), "replay_ms": await replay_ms(history)}


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
