"""definitions/ops/register_agent.yaml end to end: a well-formed, unregistered hostname is probed
and registered, each once ops approve it, then configured."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.config import Settings
from tests.catalog.ops import Api, OpsService, agent, ops_api, ops_service, step

HOST = "build-7.example.net"


@pytest.fixture
def ops() -> Iterator[OpsService]:
    with ops_service() as found:
        found.add_agent(agent("build-1.example.net"))
        yield found


@pytest.fixture
async def api(
    client: Client, settings: Settings, tmp_path: Path, ops: OpsService
) -> AsyncIterator[Api]:
    async with ops_api(client, settings, tmp_path, ops, llm=False) as found:
        yield found


async def test_a_new_agent_is_probed_registered_and_configured_with_ops_approval(
    api: Api, ops: OpsService
) -> None:
    """Nothing reaches the host before ops approve the probe, nothing is registered before they
    approve the registration (a high-priority gate in production); then the agent is configured
    and the run's output is what the ops service answered. No LLM is needed to start it."""
    inp = {"registry": ops.url, "hostname": HOST, "environment": "production", "labels": ["shop"]}
    wid = await api.start("register_agent", inp)

    probe = await api.gate(wid, "connectivity")
    assert probe["review"] == f"Let the ops service probe {HOST}:7070?"
    assert set(probe["actions"]) == {"approve", "reject", "cancel"}
    assert ops.requests("POST") == []
    assert (await api.decide(wid, probe, "approve", who="rita")).status_code == 403
    assert (await api.decide(wid, probe, "approve")).status_code == 200

    register = await api.gate(wid, "register")
    assert register["priority"] == "high"
    assert [s.path for s in ops.requests("POST")] == ["/connectivity-checks"]
    assert (await api.decide(wid, register, "approve")).status_code == 200

    done = await api.ends(wid, "completed")
    assert done["output"]["agent"]["hostname"] == HOST
    assert done["output"]["config"]["status"] == "online"
    assert done["output"]["config"]["labels"] == ["shop"]
    (registered,) = ops.requests("POST", "/agents")
    assert registered.json() == {
        "hostname": HOST,
        "port": 7070,
        "environment": "production",
        "labels": ["shop"],
        "requested_by": "olga",
    }
    assert registered.headers["idempotency-key"] == f"{wid}/register"
    assert ops.agents[HOST]["heartbeat_s"] == 30


async def test_a_registered_hostname_fails_before_any_gate(api: Api, ops: OpsService) -> None:
    """A hostname the ops service already knows fails the run at lookup with the pipeline's
    message; nobody is asked and nothing is sent."""
    wid = await api.start(
        "register_agent", {"registry": ops.url, "hostname": "build-1.example.net"}
    )
    failed = await api.ends(wid, "failed")
    assert "this hostname is already registered with the ops service" in failed["error"]
    assert not failed["open_gates"] and ops.requests("POST") == []
    assert step(failed, "connectivity")["state"] == "skipped"


NOT_HOSTNAMES = ["../admin", "Build-1.example.net", "a_b", "-lead", "x" * 64, "a..b", "a/b", ""]


async def test_a_hostname_that_is_not_a_hostname_is_a_422(api: Api, ops: OpsService) -> None:
    """A hostname that is not lower-case DNS labels (a path, an upper-case letter, an
    underscore, a label over 63 characters, an empty label) is refused at start, naming the
    field; the ops service is never called."""
    for hostname in NOT_HOSTNAMES:
        r = await api.start_request("register_agent", {"registry": ops.url, "hostname": hostname})
        assert r.status_code == 422, (hostname, r.text)
        assert any(d["path"] == "input.hostname" for d in r.json()["error"]["details"]), r.text
    assert ops.server.seen == []


async def test_an_unreachable_host_is_not_registered(api: Api, ops: OpsService) -> None:
    """When the approved probe says the host cannot be reached the run fails there: no
    registration gate opens and nothing is registered."""
    ops.unreachable.add(HOST)
    wid = await api.start("register_agent", {"registry": ops.url, "hostname": HOST})
    assert (await api.decide(wid, await api.gate(wid, "connectivity"), "approve")).is_success
    failed = await api.ends(wid, "failed")
    assert "the ops service could not reach the host" in failed["error"]
    assert ops.requests("POST", "/agents") == [] and HOST not in ops.agents
