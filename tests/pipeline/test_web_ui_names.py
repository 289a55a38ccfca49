"""What the Temporal Web UI shows of a run's history: a waiting gate's timer names the gate, its
deadline and who may decide, and each activity's summary names its step and tool."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.converter import PayloadConverter
from temporalio.worker import Worker

from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide, open_gate

WAITING = """
name: ui_names
steps:
  - {id: draft, tool: test.echo, with: {text: hi}}
  - id: publish
    needs: [draft]
    tool: test.echo
    with: {text: "${steps.draft.output.text}"}
    approval: {approvers: ["role:ops", "user:carol"], timeout: 2h, on_timeout: reject}
"""


def text(payload: Payload) -> str:
    value = PayloadConverter.default.from_payload(payload, str)
    assert isinstance(value, str)
    return value


async def events(handle: WorkflowHandle[Any, Any], kind: int) -> list[HistoryEvent]:
    return [e for e in (await handle.fetch_history()).events if e.event_type == kind]


async def test_a_waiting_gates_timer_and_each_activity_say_what_they_are(
    worker: Worker, start: Start
) -> None:
    """The one timer a waiting run holds names its gate, the deadline and the approvers; the
    activities before and after the gate are named `<step>: <tool>@<version>`."""
    handle = await start(WAITING)
    gate = await open_gate(handle, "publish")
    assert gate.deadline is not None
    timers = await events(handle, EventType.EVENT_TYPE_TIMER_STARTED)
    assert len(timers) == 1
    deadline = gate.deadline.isoformat(timespec="seconds")
    assert text(timers[0].user_metadata.summary) == (
        f"gate publish: deadline {deadline}; may decide: role:ops, user:carol"
    )
    fires_in = timers[0].timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    assert timedelta(hours=1, minutes=59) < fires_in <= timedelta(hours=2)
    await decide(handle, "publish", "approve")
    await handle.result()
    scheduled = await events(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    named = [
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            text(e.user_metadata.summary),
        )
        for e in scheduled
    ]
    assert named == [
        ("test.echo", "draft: test.echo@1.0.0"),
        ("test.echo", "publish: test.echo@1.0.0"),
    ]
