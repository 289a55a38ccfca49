"""definitions/ops/health_check.yaml end to end: agents, failed jobs and metrics read at once,
summed up and written to a report artifact, with no gate."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.config import Settings
from tests.catalog.ops import Api, OpsService, agent, ops_api, ops_service, step


@pytest.fixture
def ops() -> Iterator[OpsService]:
    with ops_service() as found:
        found.add_agent(agent("build-1.example.net"))
        found.add_agent(agent("build-2.example.net", "offline"))
        yield found


@pytest.fixture
async def api(
    client: Client, settings: Settings, tmp_path: Path, ops: OpsService
) -> AsyncIterator[Api]:
    async with ops_api(client, settings, tmp_path, ops, llm=False) as found:
        yield found


async def test_three_checks_run_at_once_and_the_report_is_written(
    api: Api, ops: OpsService, settings: Settings
) -> None:
    """The three reads are in flight together (each waits at a barrier for the other two); an
    offline agent, a failed job and the error rate make the fleet unhealthy; the report artifact
    holds the summary; nobody was asked (no gate, no decision in the audit)."""
    ops.add_job("job-4", {"repository": "acme/shop", "agent": "build-2", "error": "exit 1"}, [])
    ops.jobs["job-4"]["status"] = "failed"
    ops.metrics["error_rate"] = 0.2
    ops.barrier = threading.Barrier(3, timeout=20)
    wid = await api.start("health_check", {"registry": ops.url, "window": "15m"})
    done = await api.ends(wid, "completed")

    summary = done["output"]["summary"]
    assert done["output"]["healthy"] is False
    assert summary["agents_offline"] == ["build-2.example.net"]
    assert summary["agents_total"] == 2 and summary["error_rate"] == 0.2
    assert [j["id"] for j in summary["failed_jobs"]] == ["job-4"]
    (jobs,) = ops.requests("GET", "/jobs")
    assert jobs.query == {"status": ["failed"], "since": ["15m"]}

    path = settings.stepgate_artifact_root / done["output"]["report"]["path"]
    report = json.loads(path.read_text())
    assert report["summary"] == summary and report["window"] == "15m"
    assert report["metrics"]["queue_depth"] == 3
    gated = [e for e in done["audit"] if e["kind"] in ("decision", "auto_approve", "timeout")]
    assert not gated and not done["open_gates"]
    assert all(s["state"] == "succeeded" for s in done["steps"])
    assert step(done, "report")["state"] == "succeeded"


async def test_a_quiet_fleet_is_healthy(api: Api, ops: OpsService) -> None:
    """With every agent online, no failed job and a low error rate the run says healthy; an
    operator starts it and it completes without anyone deciding anything."""
    ops.agents["build-2.example.net"]["status"] = "online"
    wid = await api.start("health_check", {"registry": ops.url})
    done = await api.ends(wid, "completed")
    assert done["output"]["healthy"] is True
    assert done["output"]["summary"]["failed_jobs"] == []
