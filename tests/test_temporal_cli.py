"""The contract with the plain Temporal CLI: list by StepgateAwaiting, decide by signal, query status."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.conftest import ROOT, temporal_cli
from tests.pipeline.gating import open_gate
from tests.support.util import eventually
from tests.test_durability import definition
from worker import build_worker
from workflows.pipeline import PipelineWorkflow


async def cli(settings: Settings, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(),
        *args,
        "--address",
        settings.temporal_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_cli_lists_awaiting_run_signals_decision_and_queries_status(
    client: Client, settings: Settings
) -> None:
    """A run waiting for role:ops is listed by the CLI's visibility query; a `decide` signal sent
    by the `temporal` binary approves it; `workflow query --type status` prints the status."""
    role = f"ops{uuid.uuid4().hex[:8]}"  # unique, so other tests' runs do not show up
    inp = definition(
        f"""
name: deploy_application
steps:
  - id: create_job
    tool: data.echo
    with: {{value: deployed}}
    approval: {{approvers: ["role:{role}"]}}
output: "${{steps.create_job.output.value}}"
"""
    )
    async with build_worker(client, settings, default_registry(entry_points=False)):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            inp,
            id=f"cli-{uuid.uuid4()}",
            task_queue=settings.stepgate_task_queue,
        )
        await open_gate(handle, "create_job")

        async def listed() -> bool:
            out = await cli(
                settings, "workflow", "list", "--query", f"StepgateAwaiting = 'role:{role}'"
            )
            return handle.id in out

        await eventually(listed, within=30, what="run listed by StepgateAwaiting")
        queried = await cli(
            settings,
            "workflow",
            "query",
            "--workflow-id",
            handle.id,
            "--type",
            "status",
            "--output",
            "json",
        )
        assert '"waiting"' in queried and "create_job" in queried
        decision = {"gate": "create_job", "action": "approve", "actor": "alice", "roles": [role]}
        await cli(
            settings,
            "workflow",
            "signal",
            "--workflow-id",
            handle.id,
            "--name",
            "decide",
            "--input",
            json.dumps(decision),
        )
        result = await handle.result()
    assert result.output == "deployed"


@pytest.mark.server  # starts `python worker.py`
def test_worker_exits_with_clear_message_when_temporal_is_unreachable() -> None:
    """With nothing listening at TEMPORAL_ADDRESS the worker gives up after the bounded wait."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGATE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS="127.0.0.1:1", TEMPORAL_CONNECT_TIMEOUT_S="1", STEPGATE_LOG_FORMAT="json"
    )
    proc = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "Temporal at 127.0.0.1:1 is unreachable" in proc.stderr
