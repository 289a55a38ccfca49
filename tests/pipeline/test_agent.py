"""Agent steps against the real dev server and a scripted OpenAI-compatible model on loopback:
every call the model asks for is decided by policy (run, ask a person, refuse) before it runs,
and what ran is what was approved."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities import default_registry
from activities.config import Settings
from activities.registry import ToolRegistry
from tests.pipeline.agents import call_gate, calls_of, status, triage
from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide
from tests.support import fakes
from tests.support.fakes import OPS_TOOLS
from tests.tools.chat import ScriptedAgent
from tests.tools.server import LocalServer
from worker import build_worker


@pytest.fixture
def model() -> Iterator[ScriptedAgent]:
    """The scripted model; a test sets its `replies`."""
    scripted = ScriptedAgent("done")
    server = LocalServer().start()
    server.route("POST", "/v1/chat/completions", scripted)
    scripted.url = server.url("/v1/")  # type: ignore[attr-defined]
    try:
        yield scripted
    finally:
        server.stop()


@pytest.fixture
def registry() -> ToolRegistry:
    tools = default_registry(entry_points=False)
    for t in OPS_TOOLS:
        tools.add(t)
    return tools


@pytest.fixture
async def worker(
    client: Client, settings: Settings, registry: ToolRegistry, model: ScriptedAgent
) -> AsyncIterator[Worker]:
    fakes.CALLS.clear()
    fakes.READINGS.clear()
    pointed = settings.model_copy(
        update={
            "stepgate_llm_base_url": model.url,  # type: ignore[attr-defined]
            "stepgate_llm_model": "scripted",
        }
    )
    async with build_worker(client, pointed, registry) as w:
        yield w


def ran(tool: str) -> list[dict[str, object]]:
    return [args for name, args, _ in fakes.CALLS if name == tool]


async def test_low_risk_call_runs_unasked(
    worker: Worker, start: Start, model: ScriptedAgent
) -> None:
    """A call of a low-risk tool runs without a gate; the model is shown its result and ends
    with a reply, which is the step's output."""
    model.replies = [[("ops_read", {"service": "api"})], "cpu is high"]
    handle = await start(triage(), {"service": "api"})
    result = await handle.result()
    assert result.output is None and result.steps == {"triage": "succeeded"}
    assert ran("ops.read") == [{"service": "api", "what": "metrics"}]
    shown = model.tool_results(2)
    assert shown == [
        {"result": {"service": "api", "what": "metrics", "data": {"cpu": 0.93, "errors": 12}}}
    ]
    calls = await calls_of(handle)
    assert [(c.decision, c.state, c.gate) for c in calls] == [
        ("auto", "succeeded", "triage.call-1")
    ]
    st = await status(handle)
    assert [(a.kind, a.action) for a in st.audit] == [("call", "auto")]


async def test_risky_call_waits_is_modified_and_runs_with_new_arguments(
    worker: Worker, start: Start, model: ScriptedAgent
) -> None:
    """A high-risk call waits at its gate `<step>.call-<n>`; an approver's modify changes its
    arguments, the call runs with them, and the model's next prompt shows them, marked."""
    model.replies = [[("ops_restart", {"service": "api", "mode": "hard"})], "restarted"]
    handle = await start(triage(), {"service": "api"})
    gate = await call_gate(handle, 1)
    assert gate.subject == {
        "tool": "ops.restart",
        "version": "1.0.0",
        "arguments": {"service": "api", "mode": "hard"},
    }
    assert ran("ops.restart") == []
    await decide(handle, "triage.call-1", "modify", patch={"arguments": {"mode": "graceful"}})
    await handle.result()
    assert ran("ops.restart") == [{"service": "api", "mode": "graceful"}]
    (told,) = model.tool_results(2)
    assert told["arguments_changed_by_approver"]["arguments"] == {
        "service": "api",
        "mode": "graceful",
    }
    assert told["arguments_changed_by_approver"]["by"] == "alice"
    assistant = [m for m in model.shown(2) if m["role"] == "assistant"][-1]
    assert '"graceful"' in assistant["tool_calls"][0]["function"]["arguments"]
