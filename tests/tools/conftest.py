"""Fixtures for tool tests: settings without a Temporal server, real local HTTP servers, calls."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from activities import default_registry
from activities.config import Settings
from activities.models import ToolCall
from activities.runtime import ToolActivities
from tests.tools.server import LocalServer
from workflows.language.refs import Scope


def make_call(tool: str, args: dict[str, Any], *, version: str = "1.0.0", **kw: Any) -> ToolCall:
    """A ToolCall as a workflow would send it, with a unique workflow id and idempotency key:
    `args` read as a definition's `with:`, so `${secret.NAME}` in them becomes a slot."""
    workflow_id = kw.pop("workflow_id", f"wf-{uuid.uuid4().hex[:8]}")
    args, slots = Scope({}, {}, {}, {}).resolve_slots(args)
    return ToolCall(
        tool=tool,
        version=version,
        step_id=kw.pop("step_id", "step"),
        workflow_id=workflow_id,
        args=args,
        slots=kw.pop("slots", slots),
        idempotency_key=kw.pop("idempotency_key", f"{workflow_id}/step/main"),
        **kw,
    )


@pytest.fixture
def tool_settings(tmp_path: Path) -> Settings:
    """Settings for direct tool calls: per-test folders, shell allowed to run this Python only,
    and the loopback test servers reachable (the outbound policy denies them by default)."""
    return Settings(
        stepgate_data=tmp_path / "data",
        stepgate_artifact_root=tmp_path / "artifacts",
        stepgate_shell_allow=[sys.executable],
        stepgate_http_allow=["127.0.0.1"],
        _env_file=None,
    )


@pytest.fixture
async def make_acts(tool_settings: Settings) -> AsyncIterator[Callable[..., ToolActivities]]:
    """Builds ToolActivities over the built-in tools; `**overrides` change settings fields."""
    built: list[ToolActivities] = []

    def make(**overrides: Any) -> ToolActivities:
        settings = tool_settings.model_copy(update=overrides)
        acts = ToolActivities(default_registry(entry_points=False), settings)
        built.append(acts)
        return acts

    yield make
    for acts in built:
        await acts.http.aclose()


@pytest.fixture
async def acts(make_acts: Callable[..., ToolActivities]) -> ToolActivities:
    return make_acts()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()
