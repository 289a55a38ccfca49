"""What a run writes into its history to tell visibility and the inbox: at most one
search-attribute upsert and one memo change per workflow task, nothing while a local step runs,
and nothing for what its starter already set."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from activities.config import Settings
from activities.registry import ToolRegistry
from activities.tools.transform import data_echo
from tests.pipeline.gating import decide, open_gate
from tests.support.fakes import FAKE_TOOLS
from tests.support.util import eventually
from workflows.contract import MEMO_GATES, SA_AWAITING, SA_PIPELINE, SA_PRIORITY, SA_STATE
from workflows.language.validation import validate_definition
from workflows.models import GateSummary, PipelineInput
from workflows.pipeline import PipelineWorkflow
from workflows.snapshot import unpack

LOCAL_ONLY = """
name: quick
steps:
  - {id: a, tool: data.echo, with: {value: 1}}
  - {id: b, tool: data.echo, needs: [a], with: {value: "${steps.a.output.value}"}}
  - {id: c, tool: data.echo, needs: [b], with: {value: "${steps.b.output.value}"}}
output: "${steps.c.output.value}"
"""

GATED = """
name: gated
steps:
  - {id: a, tool: data.echo, with: {value: 1}}
  - id: b
    tool: data.echo
    needs: [a]
    with: {value: "${steps.a.output.value}"}
    approval: {stage: before, approvers: ["role:ops"]}
  - {id: c, tool: data.echo, needs: [b], with: {value: "${steps.b.output.value}"}}
output: "${steps.c.output.value}"
"""


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([*FAKE_TOOLS, data_echo])


async def begin(
    client: Client, settings: Settings, registry: ToolRegistry, text: str, *, like_api: bool
) -> WorkflowHandle[Any, Any]:
    """Start a run as the API does (its name and state `running` set at start) or bare, as the
    Temporal CLI does."""
    report = validate_definition(yaml.safe_load(text), registry)
    assert report.definition is not None, [str(e) for e in report.errors]
    told = (
        TypedSearchAttributes(
            [
                SearchAttributePair(SA_PIPELINE, report.definition.name),
                SearchAttributePair(SA_STATE, "running"),
            ]
        )
        if like_api
        else None
    )
    return await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(definition=report.definition, input={}),
        id=f"wf-{uuid.uuid4()}",
        task_queue=settings.stepgate_task_queue,
        search_attributes=told,
    )


def upserts(events: list[HistoryEvent]) -> list[set[str]]:
    """The Stepgate attributes each upsert in `events` set or unset."""
    found = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            keys = {k for k in fields.indexed_fields if k.startswith("Stepgate")}
            if keys:
                found.append(keys)
    return found


def memos(events: list[HistoryEvent]) -> int:
    return sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED for e in events)


def patches(events: list[HistoryEvent]) -> int:
    return sum(
        e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
        for e in events
    )


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


async def test_a_run_of_local_steps_started_by_the_api_upserts_once_and_writes_no_memo(
    worker: Worker, client: Client, settings: Settings, registry: ToolRegistry
) -> None:
    handle = await begin(client, settings, registry, LOCAL_ONLY, like_api=True)
    assert (await handle.result()).output == 1
    events = await history(handle)
    assert upserts(events) == [{SA_STATE.name}], "only the final state: the rest was set at start"
    assert memos(events) == 0, "no gate ever opened: no memo"
    assert patches(events) == 0, "one code path: no patch marker"
    told = (await handle.describe()).typed_search_attributes
    assert told.get(SA_STATE) == "completed"
    assert told.get(SA_PIPELINE) == "quick"


async def test_a_run_started_bare_names_its_pipeline_in_its_one_upsert(
    worker: Worker, client: Client, settings: Settings, registry: ToolRegistry
) -> None:
    handle = await begin(client, settings, registry, LOCAL_ONLY, like_api=False)
    assert (await handle.result()).output == 1
    events = await history(handle)
    assert upserts(events) == [{SA_PIPELINE.name, SA_STATE.name}]
    assert patches(events) == 0, "one code path: no patch marker"
    told = (await handle.describe()).typed_search_attributes
    assert (told.get(SA_PIPELINE), told.get(SA_STATE)) == ("quick", "completed")


async def test_a_parked_run_tells_the_inbox_once_per_task(
    worker: Worker, client: Client, settings: Settings, registry: ToolRegistry
) -> None:
    handle = await begin(client, settings, registry, GATED, like_api=True)
    await open_gate(handle, "b")

    async def parked() -> list[set[str]] | None:
        found = upserts(await history(handle))
        return found or None

    # The first task runs `a` locally and opens the gate: one upsert, one memo.
    opened = {SA_STATE.name, SA_AWAITING.name, SA_PRIORITY.name}
    assert await eventually(parked, what="the parked run's upsert") == [opened]
    events = await history(handle)
    assert memos(events) == 1
    told = (await handle.describe()).typed_search_attributes
    assert told.get(SA_STATE) == "waiting"
    assert list(told.get(SA_AWAITING) or []) == ["role:ops"]
    assert told.get(SA_PRIORITY) == "normal", "its most urgent open gate's priority"

    await decide(handle, "b", "approve", actor="olga")
    assert (await handle.result()).output == 1
    events = await history(handle)
    # The approval's task runs `b` and `c` locally and closes: one more upsert and one memo.
    assert upserts(events) == [opened, opened]
    assert memos(events) == 2
    told = (await handle.describe()).typed_search_attributes
    assert told.get(SA_STATE) == "completed"
    assert not told.get(SA_AWAITING)
    assert told.get(SA_PRIORITY) is None


TWO_PRIORITIES = """
name: two_priorities
steps:
  - id: urgent
    tool: data.echo
    with: {value: 1}
    approval: {stage: before, approvers: ["role:ops"], priority: urgent}
  - id: later
    tool: data.echo
    with: {value: 2}
    approval: {stage: before, approvers: ["role:ops"], priority: low}
"""


async def test_the_priority_follows_the_most_urgent_open_gate(
    worker: Worker, client: Client, settings: Settings, registry: ToolRegistry
) -> None:
    """StepgatePriority is the priority of the run's most urgent open gate, written when only it
    changed (who may decide stays the same), and unset once no gate is open."""
    handle = await begin(client, settings, registry, TWO_PRIORITIES, like_api=True)
    await open_gate(handle, "urgent")
    await open_gate(handle, "later")

    async def priority() -> str | None:
        return (await handle.describe()).typed_search_attributes.get(SA_PRIORITY)

    assert await eventually(priority, ok=lambda p: p == "urgent", what="urgent first") == "urgent"
    before = len(upserts(await history(handle)))
    await decide(handle, "urgent", "approve", actor="olga")
    assert await eventually(priority, ok=lambda p: p == "low", what="then low") == "low"
    assert upserts(await history(handle))[before:] == [{SA_PRIORITY.name}]
    await decide(handle, "later", "approve", actor="olga")
    await handle.result()
    assert await priority() is None


def written_memos(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    """Each memo change in `events`, its payloads read as JSON."""
    return [
        {
            k: json.loads(v.data)
            for k, v in e.workflow_properties_modified_event_attributes.upserted_memo.fields.items()
        }
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED
    ]


async def test_a_parked_run_writes_its_start_and_memo_without_the_defaults(
    worker: Worker, client: Client, settings: Settings, registry: ToolRegistry
) -> None:
    """A run's snapshot (packed) and its inbox line are written without the fields at their
    defaults, and the count of gates left out of the memo only once there are some: a worker
    keeps copies of these payloads for every run it caches. The inbox still reads the whole
    line."""
    handle = await begin(client, settings, registry, GATED, like_api=True)
    await open_gate(handle, "b")
    events = await history(handle)
    started = json.loads(
        events[0].workflow_execution_started_event_attributes.input.payloads[0].data
    )
    assert set(started) == {"definition", "input"}
    step_b = json.loads(unpack(started["definition"]))["steps"][1]
    assert "pipeline" not in step_b and "retry" not in step_b  # None and unset in the YAML
    assert step_b["approval"] == {"approvers": ["role:ops"]}  # stage `before` is the default
    (memo,) = written_memos(events)
    assert set(memo) == {MEMO_GATES}, "no count of more gates while there are none"
    (line,) = memo[MEMO_GATES]
    assert "review" not in line and "votes" not in line and "deadline" not in line
    read = GateSummary.model_validate(line)
    assert (read.gate, read.votes, read.quorum, read.priority) == ("b", [], 1, "normal")
