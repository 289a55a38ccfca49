"""What a workflow id's histories say: events per run along a continue-as-new chain, where the
server first suggested continuing as new, when each call of one activity type was scheduled, and
what replaying a run costs.

Read from the histories themselves (authoritative at once), not from visibility, which the server
updates a little later.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from activities.config import Settings
from workflows.client import make_data_converter

# A chain longer than this is a runaway, not a measurement.
MAX_RUNS = 100


@dataclass(frozen=True)
class RunHistory:
    run_id: str
    events: int
    # The event id of the first workflow task started with the server's suggestion to continue
    # as new (None: never suggested); the run goes on past it while calls it started are out.
    suggested_at: int | None
    # The history's size as the server last reported it to the worker.
    size_bytes: int
    # The run's input as stored: for a run that continued another, the state it carries.
    input_bytes: int
    continued_to: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "events": self.events,
            "suggested_at": self.suggested_at,
            "size_bytes": self.size_bytes,
            "input_bytes": self.input_bytes,
        }


def summarize(run_id: str, events: Sequence[HistoryEvent]) -> RunHistory:
    suggested_at: int | None = None
    size = 0
    for event in events:
        if event.HasField("workflow_task_started_event_attributes"):
            started = event.workflow_task_started_event_attributes
            size = max(size, started.history_size_bytes)
            if started.suggest_continue_as_new and suggested_at is None:
                suggested_at = event.event_id
    first = events[0] if events else None
    input_bytes = (
        sum(p.ByteSize() for p in first.workflow_execution_started_event_attributes.input.payloads)
        if first is not None
        else 0
    )
    last = events[-1] if events else None
    continued = (
        last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        if last is not None
        and last.HasField("workflow_execution_continued_as_new_event_attributes")
        else None
    )
    return RunHistory(run_id, len(events), suggested_at, size, input_bytes, continued or None)


async def run_chain(client: Client, workflow_id: str, first_run_id: str) -> list[RunHistory]:
    """Every run of `workflow_id` from `first_run_id`, following continue-as-new to the last."""
    runs: list[RunHistory] = []
    run_id: str | None = first_run_id
    while run_id is not None:
        if len(runs) >= MAX_RUNS:
            raise RuntimeError(f"{workflow_id}: more than {MAX_RUNS} runs in its chain")
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(summarize(run_id, history.events))
        run_id = runs[-1].continued_to
    return runs


def scheduled_ms(history: WorkflowHistory, activity: str) -> list[float]:
    """When each call of `activity` was scheduled, in ms since the run's first event (server time)."""
    events = history.events
    if not events:
        return []
    start = events[0].event_time.ToNanoseconds()
    return [
        (e.event_time.ToNanoseconds() - start) / 1e6
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    ]


def gaps_ms(times: Sequence[float]) -> list[float]:
    """The time between each two consecutive calls: one loop iteration each."""
    return [b - a for a, b in pairwise(times)]


async def replay_cpu_s(history: WorkflowHistory, workflows: Sequence[type]) -> float:
    """CPU seconds this process spends replaying `history`: what a worker that no longer has the
    run in its cache (restarted, or evicted it) spends before the run can take its next step, and
    what a query on a closed run costs."""
    # debug_mode: no deadlock detection, so a slow activation on a loaded machine is measured
    # rather than failed (a worker would fail it after 2 s).
    replayer = Replayer(
        workflows=list(workflows),
        data_converter=make_data_converter(Settings()),
        debug_mode=True,
    )
    started = time.process_time()
    await replayer.replay_workflow(history)
    return time.process_time() - started
