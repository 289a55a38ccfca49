"""definitions/ops/deploy_application.yaml end to end: the model picks an agent, ops approve or
change the pick, the ref is resolved, the job is created once approved (with an idempotency
key) and followed until it ends; a failed job is rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.config import Settings
from tests.catalog.ops import COMMIT, Api, OpsService, agent, ops_api, ops_service, step

INPUT = {"repository": "acme/shop", "ref": "v1.4.2"}


@pytest.fixture
def ops() -> Iterator[OpsService]:
    with ops_service() as found:
        found.add_agent(agent("build-1.example.net", labels=["java"], load=0.9))
        found.add_agent(agent("build-2.example.net", labels=["shop"], load=0.2))
        found.add_agent(agent("build-3.example.net", "offline"))
        yield found


@pytest.fixture
async def api(
    client: Client, settings: Settings, tmp_path: Path, ops: OpsService
) -> AsyncIterator[Api]:
    async with ops_api(client, settings, tmp_path, ops) as found:
        yield found


async def test_ops_change_the_models_pick_and_the_job_runs_there(api: Api, ops: OpsService) -> None:
    """The model sees only healthy agents; ops modify its pick, the job is created on their
    choice once approved (a reviewer without the ops role is refused), with the idempotency key
    `<workflow id>/create_job`, and followed until it succeeds."""
    ops.picks = [{"hostname": "build-1.example.net", "reason": "first one"}]
    wid = await api.start("deploy_application", {**INPUT, "registry": ops.url})

    pick = await api.gate(wid, "select_agent")
    assert pick["stage"] == "after" and pick["approvers"] == ["role:ops"]
    assert pick["subject"]["json"]["hostname"] == "build-1.example.net"
    assert "build-3" not in ops.pick_prompts[0] and "build-2.example.net" in ops.pick_prompts[0]
    patch = {"json": {"hostname": "build-2.example.net", "reason": "labelled shop, least load"}}
    r = await api.decide(wid, pick, "modify", who="rita", patch=patch)
    assert r.status_code == 403, r.text
    r = await api.decide(wid, pick, "modify", patch=patch)
    assert r.status_code == 200, r.text

    create = await api.gate(wid, "create_job")
    assert create["subject"]["json"]["agent"] == "build-2.example.net"
    assert create["subject"]["json"]["commit"] == COMMIT
    assert set(create["actions"]) == {"approve", "reject", "cancel"}
    assert ops.requests("POST", "/jobs") == []
    assert (await api.decide(wid, create, "approve")).status_code == 200

    done = await api.ends(wid, "completed")
    assert done["output"] == {
        "agent": "build-2.example.net",
        "commit": COMMIT,
        "job": "job-1",
        "status": "succeeded",
    }
    (created,) = ops.requests("POST", "/jobs")
    assert created.headers["idempotency-key"] == f"{wid}/create_job"
    assert created.json()["agent"] == "build-2.example.net"
    assert created.json()["requested_by"] == "olga"
    assert len(step(done, "follow")["iterations"]) == 2
    assert ops.requests("POST", "/jobs/job-1/rollback") == []


async def test_a_failed_job_fails_the_run_and_is_rolled_back(api: Api, ops: OpsService) -> None:
    """A job that ends failed fails the run with the pipeline's message, and the job created is
    rolled back (create_job's compensation)."""
    ops.picks = [{"hostname": "build-2.example.net", "reason": "least load"}]
    ops.next_states = ["failed"]
    wid = await api.start("deploy_application", {**INPUT, "registry": ops.url})
    assert (await api.decide(wid, await api.gate(wid, "select_agent"), "approve")).is_success
    assert (await api.decide(wid, await api.gate(wid, "create_job"), "approve")).is_success
    failed = await api.ends(wid, "failed")
    assert "the deployment job did not succeed" in failed["error"]
    assert [s.path for s in ops.requests("POST", "/jobs/")] == ["/jobs/job-1/rollback"]
    assert step(failed, "create_job")["state"] == "compensated"


async def test_a_pick_that_is_no_healthy_agent_creates_no_job(api: Api, ops: OpsService) -> None:
    """An approver's change to a hostname that is no healthy agent (here a path) is checked
    against the ops service as a query value: the run fails before any job gate opens."""
    ops.picks = [{"hostname": "build-2.example.net", "reason": "least load"}]
    wid = await api.start("deploy_application", {**INPUT, "registry": ops.url})
    pick = await api.gate(wid, "select_agent")
    patch = {"json": {"hostname": "../jobs"}}
    assert (await api.decide(wid, pick, "modify", patch=patch)).status_code == 200
    failed = await api.ends(wid, "failed")
    assert "the chosen agent is not a healthy agent of the ops service" in failed["error"]
    confirm = ops.requests("GET", "/agents")[-1]
    assert confirm.path == "/agents" and confirm.query["hostname"] == ["../jobs"]
    assert ops.requests("POST") == []


async def test_an_unknown_ref_or_a_malformed_repository_is_refused(
    api: Api, ops: OpsService
) -> None:
    """A repository that is not owner/name is a 422 naming the field before anything runs; a
    ref the ops service cannot resolve fails the run at validate_source, no job created."""
    r = await api.start_request(
        "deploy_application", {"repository": "../etc", "ref": "main", "registry": ops.url}
    )
    assert r.status_code == 422 and "repository" in r.text
    ops.picks = [{"hostname": "build-2.example.net", "reason": "least load"}]
    wid = await api.start("deploy_application", {**INPUT, "ref": "nope", "registry": ops.url})
    failed = await api.ends(wid, "failed")
    assert step(failed, "validate_source")["state"] == "failed"
    assert "404" in step(failed, "validate_source")["error"]
    assert ops.requests("POST") == []
