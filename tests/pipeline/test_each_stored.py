"""A for_each step over a list inside a step output too large for history (kept in the artifact
store): the list is read back by an activity, bounded, and its items run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from activities.registry import ToolRegistry
from activities.tools.http import http_request
from tests.pipeline.conftest import Start
from tests.support.fakes import FAKE_TOOLS
from tests.tools.server import LocalServer, json_reply
from workflows.language.limits import MAX_LOADED_LIST_BYTES
from workflows.pipeline import PipelineWorkflow

SERVICES = [f"svc-{n}" for n in range(40)]

EACH = """
name: each_stored
input: {type: object, properties: {url: {type: string}}}
steps:
  - id: fetch
    tool: http.request
    with: {method: GET, url: "${input.url}"}
  - id: restart
    needs: [fetch]
    for_each: "${steps.fetch.output.json.services}"
    max_parallel: 8
    tool: test.echo
    with: {service: "${item}", n: "${index}"}
output: "${steps.restart.output}"
"""


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([*FAKE_TOOLS, http_request])


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def serve(server: LocalServer, body: dict[str, Any]) -> str:
    server.routes[("GET", "/inventory")] = lambda _: json_reply(body)
    return server.url("/inventory")


async def test_for_each_over_a_list_in_a_response_kept_as_an_artifact(
    worker: Worker, start: Start, server: LocalServer
) -> None:
    """An HTTP response over 64 KB goes to the artifact store; for_each over a list inside it
    runs every item (it failed with "for_each must be a list, got dict")."""
    url = serve(server, {"services": SERVICES, "padding": "p" * 100_000})
    handle = await start(EACH, {"url": url})
    result = await handle.result()
    assert result.output == [
        {"service": name, "n": n, "step": f"restart.{n}"} for n, name in enumerate(SERVICES)
    ]
    status = await handle.query(PipelineWorkflow.status)
    fetch = next(s for s in status.steps if s.id == "fetch")
    assert fetch.artifact is not None and fetch.artifact["size"] > 100_000
    history = (await handle.fetch_history()).to_json()
    assert "p" * 1_000 not in history  # the rest of the response never enters history


async def test_for_each_over_a_stored_list_too_large_for_history_fails_the_step(
    worker: Worker, start: Start, server: LocalServer
) -> None:
    """A list whose JSON is over MAX_LOADED_LIST_BYTES is not read into history: the step fails
    naming the list, its size and the bound."""
    services = ["s" * 1_000 for _ in range(300)]
    url = serve(server, {"services": services})
    handle = await start(EACH, {"url": url})
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    restart = next(s for s in status.steps if s.id == "restart")
    assert restart.state == "failed"
    assert restart.error is not None and restart.error.startswith(
        f"for_each: the list at json.services is {len(json.dumps(services, separators=(',', ':')))}"
        f" bytes of JSON, more than {MAX_LOADED_LIST_BYTES}: narrow it first"
    ), restart.error
