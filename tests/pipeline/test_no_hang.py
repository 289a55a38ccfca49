"""No run hangs on the order in which results arrive: the ops deploy shape, where one parallel
step fails (an HTTP 404) while the other succeeds, often in the same workflow task."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from activities import default_registry
from activities.config import Settings
from activities.registry import ToolRegistry
from tests.pipeline.conftest import Start
from tests.tools.server import LocalServer, json_reply

RUNS = 100
# The calls' heartbeat timeout is raised from the default 30 s: a hundred runs at once on a busy
# two-core machine once stalled the worker past it, and a heartbeat timeout is not what this
# test is about (which result arrives first is).

DEPLOY = """
name: deploy_application
input: {type: object, properties: {registry: {type: string}, repo: {type: string}}}
steps:
  - id: list_agents
    tool: http.request
    with: {url: "${input.registry}/agents"}
    retry: {max_attempts: 1}
    heartbeat_timeout: 5m
  - id: select_agent
    needs: [list_agents]
    tool: data.echo
    with: {value: "${steps.list_agents.output.json.agents}"}
  - id: validate_repo
    tool: http.request
    with: {url: "${input.repo}/refs/main"}
    retry: {max_attempts: 1}
    heartbeat_timeout: 5m
  - id: create_job
    needs: [select_agent, validate_repo]
    tool: data.echo
    with: {value: "${steps.select_agent.output.value}"}
"""


@pytest.fixture
def registry() -> ToolRegistry:
    return default_registry(entry_points=False)


@pytest.fixture
def outside() -> Iterator[LocalServer]:
    server = LocalServer()
    server.route("GET", "/agents", lambda seen: json_reply({"agents": ["a1", "a2"]}))
    server.route("GET", "/repo/refs/main", lambda seen: json_reply({"error": "no repo"}, 404))
    server.start()
    yield server
    server.stop()


async def test_a_parallel_step_failing_never_leaves_the_run_hanging(
    worker: Worker, start: Start, client: Client, settings: Settings, outside: LocalServer
) -> None:
    """A hundred runs of the deploy shape all end failed, naming validate_repo's 404, with no
    step left running: none waits for a call that was never made."""
    inp = {"registry": outside.url(""), "repo": outside.url("/repo")}
    handles = [await start(DEPLOY, inp) for _ in range(RUNS)]

    async def ended(handle: object) -> str:
        try:
            await asyncio.wait_for(handle.result(), timeout=60)  # type: ignore[attr-defined]
        except WorkflowFailureError as err:
            return str(err.cause)
        return "completed"

    outcomes = await asyncio.gather(*(ended(h) for h in handles))
    assert all("validate_repo" in o and "404" in o for o in outcomes), set(outcomes)
    for handle in handles[:10]:
        status = await handle.query("status")
        states = {s["id"]: s["state"] for s in status["steps"]}
        assert states["validate_repo"] == "failed" and states["create_job"] == "skipped"
        assert "running" not in states.values(), states
