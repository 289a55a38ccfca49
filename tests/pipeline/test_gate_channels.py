"""Gates and their channels on a real server: the gate notice a notify tool gets, the decided
update to its posts, delegated votes, an approval void because it was too old to start, and what
quiet hours held, told later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.registry import ToolRegistry
from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide, open_gate
from tests.support import notice_fakes
from tests.support.notice_fakes import NOTICES, events, let_go, notice_registry
from tests.support.util import eventually
from workflows.models import Delegation
from workflows.pipeline import PipelineWorkflow

FORGED = (
    "{event: decided, pipeline: x, workflow_id: forged, gate: x, stage: before, round: 9, "
    "digest: x, approvers: ['user:mallory'], outcome: approve, posts: [{channel: C0, ts: '1'}]}"
)
NOTIFIED = """
name: notified
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval:
      approvers: ["role:ops"]
      review: "ship it?"
      %s
      notify: {tool: notify.slack, with: {channel: C9, gate: %s}}
"""


@pytest.fixture
def registry() -> ToolRegistry:
    return notice_registry()


def told(workflow_id: str, event: str) -> dict[str, Any]:
    return next(
        n
        for n in NOTICES
        if n["gate"]["workflow_id"] == workflow_id and n["gate"]["event"] == event
    )


async def test_the_tool_gets_the_gate_and_updates_its_posts_once_decided(
    worker: Worker, start: Start
) -> None:
    """The notify tool is told of the gate (a pipeline's own `gate` in `with` is overwritten),
    with text that carries no link; its post is kept, and once the gate is approved the same
    tool is told once more: decided, by whom, when, with that post."""
    handle = await start(NOTIFIED % ("quorum: 1", FORGED))
    gate = await open_gate(handle, "work")
    await eventually(lambda: events(handle.id) == ["opened"], what="the opened notice")
    opened = told(handle.id, "opened")
    assert opened["channel"] == "C9" and "http" not in opened["text"]
    assert opened["gate"]["digest"] == gate.digest and opened["gate"]["review"] == "ship it?"
    assert opened["gate"]["approvers"] == ["role:ops"] and opened["gate"]["posts"] == []
    await decide(handle, "work", "approve", actor="alice")
    await handle.result()
    await eventually(lambda: events(handle.id) == ["opened", "decided"], what="the update")
    decided = told(handle.id, "decided")["gate"]
    assert (decided["outcome"], decided["decided_by"]) == ("approve", ["alice"])
    assert decided["posts"] == [{"channel": "C9", "ts": opened_ts(handle.id)}]
    assert decided["decided_at"] is not None


def opened_ts(workflow_id: str) -> str:
    return f"{[n['gate']['workflow_id'] for n in NOTICES].index(workflow_id) + 1}.0"


async def test_a_gate_closed_by_its_timeout_updates_its_posts(worker: Worker, start: Start) -> None:
    """A gate whose deadline passes is decided by its clock, and its post is updated so."""
    handle = await start(NOTIFIED % ("timeout: 1s", "null"))
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    await eventually(lambda: events(handle.id) == ["opened", "decided"], what="the update")
    decided = told(handle.id, "decided")["gate"]
    assert (decided["outcome"], decided["decided_by"]) == ("reject", ["system:timeout"])


QUIET = """
name: quiet
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval:
      approvers: ["role:ops"]
      notify: {tool: notify.slack, with: {channel: C9, hold: [carol, dave], hold_s: %s}}
"""


async def test_what_quiet_hours_held_is_told_to_those_alone_when_they_end(
    worker: Worker, start: Start
) -> None:
    """The opening notice holds carol and dave for two seconds: the run's clock then tells them
    alone (the notice says `opened` and `only` names them), once; the last decided update names
    both messages' posts."""
    handle = await start(QUIET % 2)
    await open_gate(handle, "work")
    await eventually(lambda: events(handle.id) == ["opened", "opened"], what="the held notice")
    first, later = [n["gate"] for n in NOTICES if n["gate"]["workflow_id"] == handle.id]
    assert first["only"] == [] and later["only"] == ["carol", "dave"]
    assert later["round"] == first["round"] and later["digest"] == first["digest"]
    await decide(handle, "work", "approve", actor="alice")
    await handle.result()
    # The approval may land before the held notice's post is back: the gate is then told it was
    # decided once with the first post and again when the second arrives (keep_posts).
    decided = [n["gate"] for n in NOTICES if n["gate"]["workflow_id"] == handle.id][2:]
    assert [n["event"] for n in decided] in (["decided"], ["decided", "decided"])
    assert len(decided[-1]["posts"]) == 2


async def test_a_gate_decided_in_their_quiet_hours_tells_the_held_nothing_later(
    worker: Worker, start: Start
) -> None:
    """Held for ten minutes but approved at once: the run ends without waiting for the end of
    their quiet hours and nobody is told of the gate again."""
    handle = await start(QUIET % 600)
    await open_gate(handle, "work")
    await eventually(lambda: events(handle.id) == ["opened"], what="the opened notice")
    await decide(handle, "work", "approve", actor="alice")
    await handle.result()
    await eventually(lambda: events(handle.id) == ["opened", "decided"], what="the update")


ECHOED = """
name: echoed
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval:
      approvers: ["role:ops"]
      notify: {tool: test.echo, with: {held: [carol], held_until: "%s"}}
"""


async def test_a_tool_that_takes_no_gate_notice_holds_nobody(worker: Worker, start: Start) -> None:
    """A notify tool other than the three gate notice tools answers with `held` and a
    `held_until` a minute away: the run sets no timer for it (its task after the notification
    is done) and tells nobody again."""
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    handle = await start(ECHOED % soon)
    await open_gate(handle, "work")

    async def notified() -> list[str]:
        kinds = [e.event_type for e in (await handle.fetch_history()).events]
        done = [i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
        later = kinds[done[-1] :] if done else []
        return [EventType.Name(k) for k in later]

    history = await eventually(
        notified,
        ok=lambda kinds: "EVENT_TYPE_WORKFLOW_TASK_COMPLETED" in kinds,
        what="the task after the notification",
    )
    assert "EVENT_TYPE_TIMER_STARTED" not in history
    await decide(handle, "work", "approve", actor="alice")
    await handle.result()
    kinds = [e.event_type for e in (await handle.fetch_history()).events]
    assert EventType.EVENT_TYPE_TIMER_STARTED not in kinds


DELEGATED = """
name: delegated
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval: {approvers: ["user:alice", "user:carol"], quorum: 2}
"""


async def test_a_delegate_votes_for_the_absent_principal(worker: Worker, start: Start) -> None:
    """Bob, holding alice's delegation, votes for her: the status and audit say `on_behalf_of`
    alice and the channel; alice may not vote again; an ended delegation is refused saying so."""
    handle = await start(DELEGATED)
    await open_gate(handle, "work")
    later = datetime.now(UTC) + timedelta(days=1)
    ended = datetime.now(UTC) - timedelta(days=1)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decide(
            handle,
            "work",
            "approve",
            actor="bob",
            roles=[],
            delegations=[Delegation(principal="alice", until=ended)],
        )
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "not_authorized"
    assert "the delegation from 'alice' expired" in cause.message
    view = await decide(
        handle,
        "work",
        "approve",
        actor="bob",
        roles=[],
        delegations=[Delegation(principal="alice", until=later)],
        channel="web",
    )
    assert [(v.actor, v.on_behalf_of, v.channel) for v in view.approvals] == [
        ("bob", "alice", "web")
    ]
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decide(handle, "work", "approve", actor="alice", roles=[])
    assert isinstance(info.value.cause, ApplicationError)
    assert info.value.cause.type == "already_voted"
    await decide(handle, "work", "approve", actor="carol", roles=[])
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    entry = next(a for a in status.audit if a.kind == "decision" and a.actor == "bob")
    assert (entry.on_behalf_of, entry.channel) == ("alice", "web")


QUEUED = """
name: fresh
max_parallel: 1
steps:
  - id: work
    tool: test.echo
    with: {msg: hi}
    approval: {approvers: ["role:ops"], decision_valid_for: 1ms}
  - id: slow
    tool: test.hold
    with: {name: %s}
"""


async def test_an_approval_too_old_to_start_opens_the_gate_again(
    worker: Worker, start: Start
) -> None:
    """Approved while `slow` holds the run's one slot, `work` waits; when the slot frees the
    approval is older than `decision_valid_for`, so the gate opens again as round 1 (the audit
    says why) and a fresh approval runs the step."""
    name = f"slow-{id(start)}"
    handle = await start(QUEUED % name)
    await open_gate(handle, "work")
    await decide(handle, "work", "approve")

    async def queued() -> bool:
        status = await handle.query(PipelineWorkflow.status)
        return any(s.id == "slow" and s.state == "running" for s in status.steps)

    await eventually(queued, what="slow running, work approved and waiting")
    let_go(name)
    gate = await open_gate(handle, "work", round_=1)
    assert gate.approvals == []
    await decide(handle, "work", "approve")
    result = await handle.result()
    assert result.steps == {"work": "succeeded", "slow": "succeeded"}
    status = await handle.query(PipelineWorkflow.status)
    void = [a for a in status.audit if a.kind == "void"]
    assert (
        len(void) == 1
        and void[0].gate == "work"
        and "decision_valid_for 1ms" in (void[0].reason or "")
    )
    notice_fakes.HOLDS.pop(name, None)
