"""The agent step scenarios `python -m tests.histories.record` records: a call that runs unasked,
a gated call modified before it runs, a rejected call the model works around, a grant that lets
the next call of the tool through. Each scenario's model is scripted turn by turn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.pipeline.gating import decide, open_gate
from tests.tools.chat import ScriptedAgent
from tests.tools.server import LocalServer, Reply, Seen
from workflows.agent_models import GrantSpec

Handle = WorkflowHandle[Any, Any]

TRIAGE = """
name: agent_triage
steps:
  - id: triage
    agent:
      instructions: Triage the service; restart only if you must.
      input: the api is slow
      tools:
        - ops.read
        - {tool: ops.restart, approval: {approvers: ["role:ops"]}}
      max_turns: 5
output: "${steps.triage.output}"
"""
READ = ("ops_read", {"service": "api"})
RESTART = ("ops_restart", {"service": "api", "mode": "hard"})

# Each scenario's model, turn by turn.
MODELS: dict[str, ScriptedAgent] = {
    "agent_auto_call": ScriptedAgent([READ], "cpu is high; no restart needed"),
    "agent_modified_call": ScriptedAgent([RESTART], "restarted gracefully"),
    "agent_rejected_call": ScriptedAgent([RESTART], [READ], "read the logs instead"),
    "agent_grant": ScriptedAgent([RESTART], [RESTART], "restarted twice"),
}


async def _nothing(client: Client, handle: Handle) -> None:
    return None


async def _modified(client: Client, handle: Handle) -> None:
    await open_gate(handle, "triage.call-1")
    await decide(handle, "triage.call-1", "modify", patch={"arguments": {"mode": "graceful"}})


async def _rejected(client: Client, handle: Handle) -> None:
    await open_gate(handle, "triage.call-1")
    await decide(handle, "triage.call-1", "reject", comment="read the logs first")


async def _granted(client: Client, handle: Handle) -> None:
    await open_gate(handle, "triage.call-1")
    await decide(handle, "triage.call-1", "approve", grant=GrantSpec(calls=3, expires_in="2h"))


AGENT_SCENARIOS: dict[str, tuple[str, Any]] = {
    "agent_auto_call": (TRIAGE, _nothing),
    "agent_modified_call": (TRIAGE, _modified),
    "agent_rejected_call": (TRIAGE, _rejected),
    "agent_grant": (TRIAGE, _granted),
}


def _answer(seen: Seen) -> Reply:
    """The scenario's model answers: the run is named after its scenario."""
    key = seen.headers.get("idempotency-key", "")
    return MODELS[key.partition("/")[0]](seen)


@contextmanager
def scripted_models() -> Iterator[str]:
    """Every scenario's model on one loopback server; yields its base URL."""
    server = LocalServer().start()
    server.route("POST", "/v1/chat/completions", _answer)
    try:
        yield server.url("/v1/")
    finally:
        server.stop()
