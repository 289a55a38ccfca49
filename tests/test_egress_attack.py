"""The forged-decision attack, end to end: a run's http.request step posts a `decide` signal to
Temporal's own HTTP API or Web UI, naming actor `root` with role `admin`, to approve another
run's gate. A dev server with both is started here (the session's has neither at a known port)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import default_registry
from activities.config import Settings
from tests.conftest import TEST_SERVER_STARTUP, temporal_cli
from tests.support.procs import free_port
from tests.support.util import eventually
from worker import build_worker
from workflows.client import make_data_converter
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

FORGED = {"gate": "release", "action": "approve", "actor": "root", "roles": ["admin"]}


@dataclass
class ExposedTemporal:
    """A dev server whose HTTP API and Web UI listen on known loopback ports."""

    env: WorkflowEnvironment
    address: str
    http_port: int
    ui_port: int


@pytest.fixture(scope="module")
async def exposed() -> AsyncIterator[ExposedTemporal]:
    http_port, ui_port = free_port(), free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_startup_timeout=TEST_SERVER_STARTUP,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(Settings(_env_file=None)),  # type: ignore[call-arg]
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--http-port", str(http_port)],
    )
    try:
        address = env.client.service_client.config.target_host
        yield ExposedTemporal(env, address, http_port, ui_port)
    finally:
        await env.shutdown()


@pytest.fixture
def exposed_settings(exposed: ExposedTemporal, settings: Settings, tmp_path: Path) -> Settings:
    """The worker as an operator would run it next to that server, with all of loopback allowed
    (the most open setting that still must keep Temporal closed)."""
    return settings.model_copy(
        update={
            "temporal_address": exposed.address,
            "stepgate_temporal_http_address": f"127.0.0.1:{exposed.http_port}",
            "stepgate_ui_url": f"http://127.0.0.1:{exposed.ui_port}",
            "stepgate_http_allow": ["127.0.0.0/8", "::1"],
        }
    )


def pipeline(definition: dict[str, Any]) -> PipelineInput:
    report = validate_definition(definition, default_registry(entry_points=False))
    assert report.definition is not None, [str(e) for e in report.errors]
    return PipelineInput(definition=report.definition)


async def gated_run(client: Client, task_queue: str) -> WorkflowHandle[Any, Any]:
    """Another team's run, waiting at a gate only an admin may approve."""
    inp = pipeline(
        yaml.safe_load(
            """
name: other_team
steps:
  - id: release
    tool: data.echo
    with: {value: shipped}
    approval: {approvers: ["role:admin"]}
"""
        )
    )
    handle = await client.start_workflow(
        PipelineWorkflow.run, inp, id=f"victim-{uuid.uuid4()}", task_queue=task_queue
    )

    async def gate_open() -> bool:
        return bool((await handle.query(PipelineWorkflow.status)).open_gates)

    await eventually(gate_open, what="the victim's gate opened")
    return handle


def forged_request(exposed: ExposedTemporal, via: str, workflow_id: str) -> dict[str, Any]:
    """The request the attacker's step sends: the HTTP API takes JSON payload shorthand; the UI
    proxies it as protobuf JSON and only wants a CSRF cookie equal to a header."""
    path = f"/api/v1/namespaces/default/workflows/{workflow_id}/signal/decide"
    if via == "http_api":
        return {"url": f"http://127.0.0.1:{exposed.http_port}{path}", "json": {"input": [FORGED]}}
    payload = {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(FORGED).encode()).decode(),
    }
    return {
        "url": f"http://localhost:{exposed.ui_port}{path}",
        "headers": {"X-CSRF-TOKEN": "forged", "Cookie": "_csrf=forged"},
        "json": {"input": {"payloads": [payload]}},
    }


async def tool_attempts(handle: WorkflowHandle[Any, Any]) -> list[tuple[int, str, bool]]:
    """(attempt, failure type, non-retryable) of each failed activity in the run's history."""
    attempt, found = 0, []
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempt = e.activity_task_started_event_attributes.attempt
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            info = e.activity_task_failed_event_attributes.failure.application_failure_info
            found.append((attempt, info.type, info.non_retryable))
    return found


async def signals(handle: WorkflowHandle[Any, Any]) -> int:
    """How many signals the run's history has received."""
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    return kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


@pytest.mark.parametrize(
    ("via", "what"),
    [("http_api", "the Temporal HTTP API"), ("ui", "the Temporal Web UI")],
)
async def test_forged_decision_is_refused_when_a_tool_targets_temporal(
    exposed: ExposedTemporal, exposed_settings: Settings, via: str, what: str
) -> None:
    """The same request that approves a gate when sent from outside (the control, on a decoy
    run) fails the attacker's run with a non-retryable refusal when a tool sends it, and no
    signal reaches the victim."""
    client = exposed.env.client
    queue = exposed_settings.stepgate_task_queue
    async with build_worker(client, exposed_settings, default_registry(entry_points=False)):
        decoy, victim = await gated_run(client, queue), await gated_run(client, queue)

        # Control: the route is live and the forgery works when it does not come from a tool
        # (the Web UI connects to the frontend lazily, so it may answer 503 at first).
        request = forged_request(exposed, via, decoy.id)
        async with httpx.AsyncClient(timeout=10) as outside:

            async def forge() -> int:
                sent = await outside.post(
                    request["url"], json=request["json"], headers=request.get("headers")
                )
                return sent.status_code

            await eventually(forge, ok=lambda status: status == 200, what=f"control via {via}")
        decoy_result = await decoy.result()
        assert decoy_result.state == "completed"
        decided_by = (await decoy.query(PipelineWorkflow.status)).audit[0].actor
        assert decided_by == "root"

        attack = pipeline(
            {
                "name": "forge",
                "steps": [
                    {
                        "id": "forge",
                        "tool": "http.request",
                        "with": {"method": "POST", **forged_request(exposed, via, victim.id)},
                        "retry": {"max_attempts": 3, "initial_interval": "100ms"},
                    }
                ],
            }
        )
        attacker = await client.start_workflow(
            PipelineWorkflow.run, attack, id=f"attacker-{uuid.uuid4()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError):
            await attacker.result()
        step = (await attacker.query(PipelineWorkflow.status)).steps[0]
        assert step.state == "failed", step
        assert await tool_attempts(attacker) == [(1, "EgressRefused", True)]
        port = exposed.http_port if via == "http_api" else exposed.ui_port
        assert f"refused 127.0.0.1:{port}" in (step.error or "")
        assert f"is {what}" in (step.error or "")

        victim_status = await victim.query(PipelineWorkflow.status)
        assert [g.gate for g in victim_status.open_gates] == ["release"]
        assert victim_status.audit == []
        assert await signals(victim) == 0
        await victim.terminate("test over")
