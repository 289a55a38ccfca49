"""The fault drills of `make drill`, at their quick size, as part of the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.drill import SCALES, run_drills

# A Temporal dev server, workers and the API as processes of its own (bench.drill).
pytestmark = pytest.mark.server


async def test_drills_lose_nothing(tmp_path: Path) -> None:
    """Worker SIGKILLs, a Temporal restart, an API restart under a live /events client, a
    decision storm straight to Temporal and through the API, and the bounds that keep runs from
    getting stuck: every run completes (or ends as it must), side effects happen once, no
    decision is lost."""
    scale = SCALES["quick"]
    results = await run_drills(scale, tmp_path)

    kills = results["worker_kills"]
    assert kills["completed"] == kills["runs"] == scale.pipelines, kills
    assert kills["side_effects"] == scale.pipelines, kills
    assert kills["unexpected_side_effects"] == kills["missing_side_effects"] == 0, kills
    assert kills["workflow_task_failures"] == 0, kills

    restart = results["server_restart"]
    assert restart["completed"] == 2 * scale.parked, restart
    assert restart["decisions_lost"] == 0, restart
    assert restart["unexpected_side_effects"] == restart["missing_side_effects"] == 0, restart

    api = results["api_restart"]
    assert api["final_state"] == "completed" and api["revisions_increasing"], api
    assert {"waiting", "completed"} <= set(api["states_seen"]), api

    storm = results["decision_storm"]
    assert storm["runs_with_exact_votes"] == storm["completed"] == scale.storm_runs, storm
    assert sum(storm["refused"].values()) == storm["decisions"] - storm["valid"], storm
    assert storm["workflow_task_failures"] == 0, storm

    api_storm = results["api_decision_storm"]
    assert api_storm["valid_applied_once"] == api_storm["voters"], api_storm
    assert api_storm["invalid_refused"] == api_storm["invalid"], api_storm
    assert api_storm["server_errors"] == 0, api_storm

    bounds = results["bounds"]
    assert bounds["local_completed"] and bounds["local_items"] == scale.bound_items, bounds
    assert bounds["most_local_results_in_one_task"] <= 100, bounds
    assert "did not hold within 5 iterations" in bounds["loop_ended"], bounds
    assert bounds["too_many_units_status"] == 422, bounds
    assert bounds["stuck_run_after_cancel"] == "TERMINATED", bounds
    assert results["ok"]
