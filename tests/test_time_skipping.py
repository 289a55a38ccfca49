"""The time-skipping test server: long timers fire at once, and Stepgate's runs work on it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from temporalio import workflow
from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.config import Settings
from tests.conftest import ROOT, time_skipping_server
from tests.support.fakes import fake_registry
from tests.support.util import eventually
from worker import build_worker
from workflows.contract import MEMO_GATES, SA_AWAITING, SA_PIPELINE, SA_STATE
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput, PipelineResult
from workflows.pipeline import PipelineWorkflow

MONTH = timedelta(days=30)
# The timer fires exactly on time; the slack only absorbs the workflow task that follows it.
SLACK = timedelta(hours=1)


@workflow.defn(sandboxed=False)
class SleepAMonth:
    @workflow.run
    async def run(self) -> list[datetime]:
        before = workflow.now()
        await workflow.sleep(MONTH)
        return [before, workflow.now()]


@workflow.defn(sandboxed=False)
class Labelled:
    @workflow.run
    async def run(self) -> None:
        workflow.upsert_search_attributes(
            [
                SA_STATE.value_set("waiting"),
                SA_PIPELINE.value_set("labelled"),
                SA_AWAITING.value_set(["role:ops", "user:carol"]),
            ]
        )
        workflow.upsert_memo({MEMO_GATES: [{"gate": "work"}]})


GATED_FOR_A_MONTH = """
name: gated_for_a_month
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval:
      stage: before
      approvers: ["role:ops"]
      timeout: 30d
      on_timeout: approve
output: "${steps.work.output}"
"""


async def test_sleep_of_thirty_days_completes_at_once(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    """A workflow sleeping 30 days completes while the test waits, and the clock moved 30 days."""
    client = time_skipping_env.client
    start = await time_skipping_env.get_current_time()
    async with Worker(client, task_queue=task_queue, workflows=[SleepAMonth]):
        before, after = await client.execute_workflow(
            SleepAMonth.run, id=f"sleep-{uuid.uuid4()}", task_queue=task_queue
        )
    assert MONTH <= after - before < MONTH + SLACK
    assert await time_skipping_env.get_current_time() - start >= MONTH


async def test_upserts_search_attributes_and_memo_when_registered(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    """Stepgate's search attributes (registered by the fixture) and its memo are kept per run."""
    client = time_skipping_env.client
    async with Worker(client, task_queue=task_queue, workflows=[Labelled]):
        handle = await client.start_workflow(
            Labelled.run, id=f"labelled-{uuid.uuid4()}", task_queue=task_queue
        )
        # Polled, not awaited: an unregistered attribute fails the workflow task over and over,
        # and awaiting the result would then hang until pytest's timeout.
        described: WorkflowExecutionDescription = await eventually(
            handle.describe,
            ok=lambda d: d.status == WorkflowExecutionStatus.COMPLETED,
            what="the run completes",
        )
    attributes = described.typed_search_attributes
    assert attributes.get(SA_STATE) == "waiting"
    assert attributes.get(SA_PIPELINE) == "labelled"
    assert list(attributes.get(SA_AWAITING) or []) == ["role:ops", "user:carol"]
    assert await described.memo() == {MEMO_GATES: [{"gate": "work"}]}


async def test_gate_timeout_of_thirty_days_applies_on_timeout(
    time_skipping_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """A pipeline gate nobody decides times out after 30 days, approves, and the run completes."""
    client = time_skipping_env.client
    settings = Settings(
        temporal_address=client.service_client.config.target_host,
        stepgate_task_queue=task_queue,
        stepgate_data=tmp_path / "data",
        stepgate_artifact_root=tmp_path / "artifacts",
        _env_file=None,
    )
    registry = fake_registry()
    report = validate_definition(yaml.safe_load(GATED_FOR_A_MONTH), registry)
    assert report.definition is not None, [str(e) for e in report.errors]
    async with build_worker(client, settings, registry):
        handle: WorkflowHandle[PipelineWorkflow, PipelineResult] = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition, input={}),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        # Time skips only while a result is awaited, so the gate stays open until then.
        described: WorkflowExecutionDescription = await eventually(
            handle.describe,
            ok=lambda d: d.typed_search_attributes.get(SA_AWAITING) == ["role:ops"],
            what="the run waits for role:ops",
        )
        assert described.typed_search_attributes.get(SA_STATE) == "waiting"
        assert [g["gate"] for g in (await described.memo())[MEMO_GATES]] == ["work"]
        result = await handle.result()
        status = await handle.query(PipelineWorkflow.status)
    assert (result.state, result.steps, result.output) == (
        "completed",
        {"work": "succeeded"},
        {"msg": "hi", "step": "work"},
    )
    gate = status.steps[0].gate
    assert gate is not None and gate.deadline == gate.opened_at + MONTH
    [timeout] = status.audit
    assert (timeout.kind, timeout.action) == ("timeout", "approve")
    assert MONTH <= timeout.at - gate.opened_at < MONTH + SLACK


async def test_test_server_listens_on_loopback_only(time_skipping_env: WorkflowEnvironment) -> None:
    """The server (which has no authentication) accepts 127.0.0.1 but not other addresses.

    Linux routes all of 127.0.0.0/8 to this host: a server bound to every interface, as
    upstream's main is, would accept 127.0.0.2 too.
    """
    port = int(time_skipping_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.2", port)


@pytest.mark.server  # runs the time-skipping server's launcher (fetched by scripts/ensure-test-server)
def test_launcher_refuses_a_bad_port() -> None:
    """The launcher exits with its usage for a port that is not one, instead of a stack trace."""
    result = subprocess.run(
        [time_skipping_server(), "70000"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert "usage: LoopbackTestServer <port 0-65535>" in result.stderr


def ensure_test_server(override: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEMPORAL_TEST_SERVER": override}
    return subprocess.run(
        [str(ROOT / "scripts" / "ensure-test-server")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_ensure_test_server_prints_an_executable_override(tmp_path: Path) -> None:
    """TEMPORAL_TEST_SERVER naming an executable file is printed as an absolute path."""
    binary = tmp_path / "temporal-test-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    result = ensure_test_server(os.path.relpath(binary))
    assert (result.returncode, result.stdout) == (0, f"{binary.resolve()}\n"), result


def test_ensure_test_server_refuses_a_non_executable_override(tmp_path: Path) -> None:
    """TEMPORAL_TEST_SERVER naming a file that cannot run fails and names the variable."""
    binary = tmp_path / "temporal-test-server"
    binary.write_text("not a program")
    result = ensure_test_server(str(binary))
    assert (result.returncode, result.stdout) == (1, ""), result
    assert f"TEMPORAL_TEST_SERVER={binary} is not an executable file" in result.stderr
