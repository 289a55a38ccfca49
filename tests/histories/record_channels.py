"""Scenarios of gates and their channels for the replay test: a notice's posts updated once the
gate is decided, a delegated vote, an approval void because it was too old to start, a
notice quiet hours held, told later."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.pipeline.gating import decide, open_gate
from tests.support.notice_fakes import events, let_go
from tests.support.util import eventually
from workflows.models import Delegation
from workflows.pipeline import PipelineWorkflow

Handle = WorkflowHandle[Any, Any]
Drive = Callable[[Client, Handle], Awaitable[bool | None]]
CHANNEL_SCENARIOS: dict[str, tuple[str, Drive | None]] = {}


def scenario(name: str, text: str) -> Callable[[Drive], None]:
    def add(drive: Drive) -> None:
        CHANNEL_SCENARIOS[name] = (text, drive)

    return add


@scenario(
    "gate_notice_posts_decided",
    """
name: notice_posts
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval:
      approvers: ["role:ops"]
      review: "ship it?"
      notify: {tool: notify.slack, with: {channel: C9}}
""",
)
async def _posts(client: Client, handle: Handle) -> None:
    await open_gate(handle, "work")
    await eventually(lambda: events(handle.id) == ["opened"], what="the opened notice")
    await decide(handle, "work", "approve")


@scenario(
    "delegated_vote",
    """
name: delegated
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval: {approvers: ["user:alice", "user:carol"], quorum: 2}
""",
)
async def _delegated(client: Client, handle: Handle) -> None:
    await open_gate(handle, "work")
    until = datetime(2100, 1, 1, tzinfo=UTC)
    await decide(
        handle,
        "work",
        "approve",
        actor="bob",
        roles=[],
        delegations=[Delegation(principal="alice", until=until)],
        channel="api",
    )
    await decide(handle, "work", "approve", actor="carol", roles=[])


@scenario(
    "void_approval",
    """
name: fresh
max_parallel: 1
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval: {approvers: ["role:ops"], decision_valid_for: 1ms}
  - id: slow
    tool: test.hold
    with: {name: record-void}
""",
)
async def _void(client: Client, handle: Handle) -> None:
    await open_gate(handle, "work")
    await decide(handle, "work", "approve")

    async def queued() -> bool:
        status = await handle.query(PipelineWorkflow.status)
        return any(s.id == "slow" and s.state == "running" for s in status.steps)

    await eventually(queued, what="slow running, work approved and waiting")
    let_go("record-void")
    await open_gate(handle, "work", round_=1)
    await decide(handle, "work", "approve")


@scenario(
    "quiet_hours_held_then_told",
    """
name: quiet
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval:
      approvers: ["role:ops"]
      notify: {tool: notify.slack, with: {channel: C9, hold: [carol], hold_s: 2}}
""",
)
async def _quiet(client: Client, handle: Handle) -> None:
    """The opening holds carol for two seconds; the run tells her alone then, and is approved."""
    await open_gate(handle, "work")
    await eventually(lambda: events(handle.id) == ["opened", "opened"], what="the held notice")
    await decide(handle, "work", "approve")
