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
from workflows.contract import PATCH_CORE_V3
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


def test_pipeline_histories_cover_each_code_path() -> None:
    """Current pipeline histories are started as the API starts a run (`engine` 3: the core-v3
    path without a patch marker), each `.patched-core-v3` copy as the Temporal CLI would (no
    `engine`: the core-v3 marker), and each `.before-…` copy predates core-v3: every path a run
    in flight may be on is replayed."""
    paths: dict[str, int] = {}
    for path in HISTORIES:
        events = json.loads(path.read_text())["events"]
        started = events[0]["workflowExecutionStartedEventAttributes"]
        if started["workflowType"]["name"] != "PipelineWorkflow":
            continue
        kind = path.name.split(".")[1] if path.name.count(".") > 1 else "current"
        patches = _patch_ids(events)
        if kind == "current":
            assert patches == set(), path.name
        elif kind == "patched-core-v3":
            assert patches == {PATCH_CORE_V3}, path.name
        else:
            assert kind.startswith("before-") and PATCH_CORE_V3 not in patches, path.name
        paths[kind.partition("-")[0]] = paths.get(kind.partition("-")[0], 0) + 1
    assert paths["current"] >= 10 and paths["patched"] >= 10 and paths["before"] >= 10, paths


def _patch_ids(events: list[dict[str, Any]]) -> set[str]:
    found = set()
    for event in events:
        marker = event.get("markerRecordedEventAttributes") or {}
        if marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found
