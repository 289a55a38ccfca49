"""definitions/ops/troubleshoot_failure.yaml end to end: an agent reads a failed job, its logs,
its agent and the recent failures unasked; each call that changes something waits for ops; when
a fix was applied the pipeline follows the job itself until it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.config import Settings
from tests.catalog.ops import Api, OpsService, agent, ops_api, ops_service, step

HOST = "build-2.example.net"


@pytest.fixture
def ops() -> Iterator[OpsService]:
    with ops_service() as found:
        found.add_agent(agent(HOST, disk_free_mb=12))
        job = {
            "repository": "acme/shop",
            "agent": HOST,
            "status": "failed",
            "error": "exit 1",
            "logs": ["unpacking", "write failed: no space left on device"],
        }
        found.add_job("job-9", job, [])
        yield found


@pytest.fixture
async def api(
    client: Client, settings: Settings, tmp_path: Path, ops: OpsService
) -> AsyncIterator[Api]:
    async with ops_api(client, settings, tmp_path, ops) as found:
        yield found


def reads(base: str) -> list[tuple[str, Any]]:
    return [
        ("http_request", {"url": f"{base}/jobs/job-9"}),
        ("http_request", {"method": "GET", "url": f"{base}/jobs/job-9/logs"}),
        ("http_request", {"url": f"{base}/jobs", "query": {"status": "failed"}}),
        ("http_request", {"url": f"{base}/agents/{HOST}"}),
    ]


async def test_reads_run_unasked_the_fix_waits_for_ops_and_the_job_is_verified(
    api: Api, ops: OpsService
) -> None:
    """Four reads run without a gate; the restart and the retry each wait at their own call
    gate for the ops role (refused to a reviewer without it); once both ran the pipeline follows
    the job until it succeeds, and the run's output is the agent's diagnosis and the job's end."""
    base = ops.url
    ops.retried = ["succeeded"]
    ops.agent_model.replies = [
        reads(base),
        [
            ("http_request", {"method": "POST", "url": f"{base}/agents/{HOST}/restart"}),
            ("http_request", {"method": "POST", "url": f"{base}/jobs/job-9/retry"}),
        ],
        '{"diagnosis": "the agent ran out of disk", "fix": "restarted the agent (cleans its '
        'workspace) and retried the job", "fix_applied": true}',
    ]
    wid = await api.start("troubleshoot_failure", {"registry": base, "job": "job-9"})
    restart = await api.gate(wid, "investigate.call-5")
    retry = await api.gate(wid, "investigate.call-6")
    assert restart["approvers"] == ["role:ops"]
    assert retry["subject"]["arguments"]["url"] == f"{base}/jobs/job-9/retry"
    assert ops.requests("POST") == []
    assert len(ops.requests("GET")) == 4
    results = ops.agent_model.tool_results(2)
    assert "no space left on device" in str(results[1]) and "disk_free_mb" in str(results[3])
    assert (await api.decide(wid, retry, "approve", who="rita")).status_code == 403
    assert (await api.decide(wid, restart, "approve")).status_code == 200
    assert (await api.decide(wid, retry, "approve")).status_code == 200

    done = await api.ends(wid, "completed")
    assert done["output"] == {
        "diagnosis": "the agent ran out of disk",
        "fix": "restarted the agent (cleans its workspace) and retried the job",
        "fix_applied": True,
        "job_status": "succeeded",
    }
    assert sorted(s.path for s in ops.requests("POST")) == [
        f"/agents/{HOST}/restart",
        "/jobs/job-9/retry",
    ]
    calls = step(done, "investigate")["agent"]["calls"]
    assert [c["decision"] for c in calls] == ["auto"] * 4 + ["approve", "approve"]
    assert step(done, "verify")["state"] == "succeeded"


async def test_a_refused_fix_is_told_to_the_agent_and_nothing_is_verified(
    api: Api, ops: OpsService
) -> None:
    """Ops reject the retry: it is never sent, the model is told who refused it, it reports no
    fix, and the verification is skipped; the run still completes with the diagnosis."""
    base = ops.url
    ops.agent_model.replies = [
        reads(base)[:2],
        [("http_request", {"method": "POST", "url": f"{base}/jobs/job-9/retry"})],
        '{"diagnosis": "the agent ran out of disk", "fix": "none: the retry was refused", '
        '"fix_applied": false}',
    ]
    wid = await api.start("troubleshoot_failure", {"registry": base, "job": "job-9"})
    retry = await api.gate(wid, "investigate.call-3")
    assert (await api.decide(wid, retry, "reject", comment="free the disk first")).is_success
    done = await api.ends(wid, "completed")
    assert done["output"]["fix_applied"] is False and done["output"]["job_status"] is None
    assert ops.requests("POST") == []
    assert "free the disk first" in str(ops.agent_model.tool_results(3))
    assert step(done, "verify")["state"] == "skipped"
