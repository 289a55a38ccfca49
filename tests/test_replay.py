"""Determinism safety: recorded histories of representative runs replay with today's workflow code."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

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
    # The file is named after the workflow id (child workflow ids are derived from it).
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[PipelineWorkflow, GovernedWorkflow], data_converter=make_data_converter()
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_histories_are_one_per_scenario_on_one_code_path() -> None:
    """Every recorded scenario has exactly one history, recorded on the one code path there is:
    no patch marker in any of them, and no file kept for an older path."""
    from tests.histories.record import SCENARIOS

    stems = {p.stem for p in HISTORIES}
    assert set(SCENARIOS) <= stems, set(SCENARIOS) - stems
    assert all("." not in stem for stem in stems), sorted(s for s in stems if "." in s)
    for path in HISTORIES:
        events = json.loads(path.read_text())["events"]
        assert _patch_ids(events) == set(), path.name


def _patch_ids(events: list[dict[str, Any]]) -> set[str]:
    found = set()
    for event in events:
        marker = event.get("markerRecordedEventAttributes") or {}
        if marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def test_agent_histories_exist() -> None:
    """Agent steps are replayed too: a call run unasked, a modified, a rejected and a granted."""
    stems = {p.stem for p in HISTORIES}
    assert {
        "agent_auto_call",
        "agent_modified_call",
        "agent_rejected_call",
        "agent_grant",
    } <= stems
