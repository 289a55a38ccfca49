"""A worker evicting a run from its cache cancels the run's tasks; only Temporal's cancel request
stops the run. The eviction's cancel goes straight up, so the rules wind nothing down for it
(the worker drops what the run does then, and replays the run when it next needs it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker import workflow_runner
from workflows.client import make_data_converter
from workflows.pipeline import PipelineWorkflow
from workflows.rules import lifecycle

HISTORIES = Path(__file__).parent / "histories"


async def replay_counting_cancels(name: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Replay a recorded history as the worker runs workflows (the replayer evicts the run at
    the end, as a worker does); how many times the rules were told the run was cancelled."""
    calls: list[Any] = []
    real = lifecycle.request_cancel

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(lifecycle, "request_cancel", counting)
    path = HISTORIES / f"{name}.json"
    replayer = Replayer(
        workflows=[PipelineWorkflow],
        data_converter=make_data_converter(),
        workflow_runner=workflow_runner(),
    )
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    return len(calls)


async def test_evicting_a_parked_run_winds_nothing_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run waiting at its gate when the worker evicts it records no cancel."""
    assert await replay_counting_cancels("continued_as_new_while_parked", monkeypatch) == 0


async def test_a_cancel_request_still_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run Temporal was asked to cancel is cancelled by the rules, in replay as it was live."""
    assert await replay_counting_cancels("timeout_escalation_and_cancel", monkeypatch) == 1
