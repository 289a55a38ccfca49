"""Fixtures for workflow tests: a worker with fake tools on the test's task queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.config import Settings
from activities.registry import ToolRegistry
from tests.support.fakes import fake_registry
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow


@pytest.fixture
def registry() -> ToolRegistry:
    return fake_registry()


@pytest.fixture
async def worker(
    client: Client, settings: Settings, registry: ToolRegistry
) -> AsyncIterator[Worker]:
    w = build_worker(client, settings, registry)
    async with w:
        yield w


Start = Callable[..., Any]


@pytest.fixture
def start(client: Client, settings: Settings, registry: ToolRegistry) -> Start:
    """Validate a YAML definition and start it; returns the workflow handle."""

    async def go(
        text: str, inp: dict[str, Any] | None = None, **kw: Any
    ) -> WorkflowHandle[Any, Any]:
        report = validate_definition(yaml.safe_load(text), registry)
        assert report.definition is not None, [str(e) for e in report.errors]
        return await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition, input=inp or {}, **kw),
            id=f"wf-{uuid.uuid4()}",
            task_queue=settings.stepgate_task_queue,
        )

    return go
