"""Shared fixtures: one real Temporal dev server per test session, a fresh task queue per test."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.config import Settings
from workflows.client import make_data_converter
from workflows.contract import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
# A second namespace on the session server, for tests that list everything they can see.
FUZZ_NAMESPACE = "stepgate-fuzz"


def temporal_cli() -> str:
    """The CLI that scripts/ensure-temporal provides (built once into the user cache)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "ensure-temporal")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(Settings()),
        dev_server_extra_args=["--namespace", FUZZ_NAMESPACE],
    )
    try:
        yield env
    finally:
        await env.shutdown()


# A dev server that suggests continue-as-new after a few events, so runs carry their state into a
# new run within a test instead of after thousands of events.
SMALL_HISTORY_EVENTS = 150


@pytest.fixture(scope="session")
async def small_history_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(Settings()),
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SMALL_HISTORY_EVENTS}",
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def settings(tmp_path: Path, task_queue: str, temporal_env: WorkflowEnvironment) -> Settings:
    """Settings pointed at the session's dev server, a per-test queue and per-test folders."""
    target = temporal_env.client.service_client.config.target_host
    return Settings(
        temporal_address=target,
        stepgate_task_queue=task_queue,
        stepgate_data=tmp_path / "data",
        stepgate_artifact_root=tmp_path / "artifacts",
        # Tests serve tools from loopback; Temporal's own endpoints stay closed even so.
        stepgate_http_allow=["127.0.0.1"],
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(autouse=True)
def _no_ambient_stepgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's STEPGATE_* or TEMPORAL_* variables."""
    for key in list(os.environ):
        if key.startswith(("STEPGATE_", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")):
            monkeypatch.delenv(key, raising=False)
