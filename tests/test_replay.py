"""Determinism safety: recorded histories of representative runs replay with today's workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.client import make_data_converter
from workflows.governed import GovernedWorkflow
from workflows.pipeline import PipelineWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_recorded_histories_exist() -> None:
    """The replay test has histories to replay (a missing folder must not pass silently)."""
    assert len(HISTORIES) >= 5


def test_governed_histories_exist() -> None:
    """Governed runs are replayed too: an auto-approved, a modified, a rejected and a parked one."""
    stems = {p.stem for p in HISTORIES}
    assert {
        "governed_tier1_auto",
        "governed_tier2_modified_to_tier3",
        "governed_rejected",
        "governed_parked_at_review",
    } <= stems


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_with_current_code(path: Path) -> None:
    """A change to workflow code that would break in-flight runs of this shape fails here."""
    # `<id>.before-<change>.json` keeps a history recorded before a versioned change: the
    # workflow id is the part before the dot (child workflow ids are derived from it).
    history = WorkflowHistory.from_json(path.stem.partition(".")[0], path.read_text())
    replayer = Replayer(
        workflows=[PipelineWorkflow, GovernedWorkflow], data_converter=make_data_converter()
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
