"""Record histories of representative runs for the replay test.

Run `python -m tests.histories.record` after a deliberate, versioned change to workflow code
(see README, "Changing workflow code"). It starts its own dev server and rewrites the JSON files.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.config import Settings
from tests.conftest import temporal_cli
from tests.fakes import fake_registry
from tests.pipeline.gating import decide, open_gate
from worker import build_worker
from workflows.client import make_data_converter
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow
from workflows.validation import validate_definition

HERE = Path(__file__).parent
Handle = WorkflowHandle[Any, Any]

SCENARIOS: dict[str, tuple[str, Callable[[Handle], Awaitable[None]] | None]] = {}


def scenario(name: str, text: str) -> Callable[[Callable[[Handle], Awaitable[None]]], None]:
    def add(drive: Callable[[Handle], Awaitable[None]]) -> None:
        SCENARIOS[name] = (text, drive)

    return add


async def nothing(handle: Handle) -> None:
    return None


SCENARIOS["diamond_flaky"] = (
    """
name: diamond_flaky
input: {type: object, properties: {who: {type: string}}}
steps:
  - id: top
    tool: test.echo
    with: {who: "${input.who}"}
  - id: left
    needs: [top]
    tool: test.flaky
    with: {fail_times: 1, value: left}
    retry: {max_attempts: 3, initial_interval: 100ms}
  - id: right
    needs: [top]
    if: "steps.top.output.who != 'nobody'"
    tool: test.echo
  - id: bottom
    needs: [left, right]
    tool: test.echo
    with: {l: "${steps.left.output.value}"}
output: "${steps.bottom.output.l}"
""",
    nothing,
)

SCENARIOS["compensation_on_failure"] = (
    """
name: saga
steps:
  - id: reserve
    tool: test.ledger
    compensate: {tool: test.ledger, with: {entry: undo-reserve}}
  - id: fail
    needs: [reserve]
    tool: test.fail
""",
    nothing,
)


@scenario(
    "gates_quorum_and_after_retry",
    """
name: gates
steps:
  - id: plan
    tool: test.echo
    with: {msg: plan}
    approval: {stage: before, approvers: ["role:ops"], quorum: 2, timeout: 1h}
  - id: apply
    needs: [plan]
    tool: test.echo
    with: {msg: apply}
    approval: {stage: after, approvers: ["role:ops"]}
""",
)
async def _gates(handle: Handle) -> None:
    await open_gate(handle, "plan")
    await handle.signal(
        PipelineWorkflow.decide,
        {"gate": "plan", "action": "approve", "actor": "x", "roles": ["dev"]},
    )
    await decide(handle, "plan", "approve", actor="alice")
    await decide(handle, "plan", "approve", actor="bob")
    await open_gate(handle, "apply")
    await decide(handle, "apply", "retry", patch={"msg": "again"})
    await open_gate(handle, "apply", round_=1)
    await decide(handle, "apply", "modify", patch={"msg": "edited"})


@scenario(
    "on_failure_skip_and_pause",
    """
name: onfail
steps:
  - id: broken
    tool: test.fail
    approval: {stage: on_failure, approvers: ["role:ops"]}
  - id: after
    needs: [broken]
    tool: test.echo
""",
)
async def _onfail(handle: Handle) -> None:
    await open_gate(handle, "broken")
    await handle.signal(PipelineWorkflow.pause)
    await decide(handle, "broken", "skip", patch={"substitute": 1})
    await handle.signal(PipelineWorkflow.resume)


@scenario(
    "timeout_escalation_and_cancel",
    """
name: escalate
steps:
  - id: first
    tool: test.ledger
    compensate: {tool: test.ledger}
  - id: wait
    needs: [first]
    tool: test.echo
    approval: {approvers: ["role:ops"], timeout: 1s, on_timeout: escalate, escalate_to: ["role:lead"], escalation_timeout: 1h}
""",
)
async def _escalate(handle: Handle) -> None:
    from tests.util import eventually

    async def escalated() -> bool:
        g = await open_gate(handle, "wait")
        return g.escalated

    await eventually(escalated, what="escalated")
    await handle.cancel()


async def record(client: Client, settings: Settings) -> list[str]:
    registry = fake_registry()
    written = []
    async with build_worker(client, settings, registry):
        for name, (text, drive) in SCENARIOS.items():
            report = validate_definition(yaml.safe_load(text), registry)
            assert report.definition is not None, report.errors
            handle = await client.start_workflow(
                PipelineWorkflow.run,
                PipelineInput(definition=report.definition, input={"who": "me"}),
                id=f"{name}-{uuid.uuid4().hex[:8]}",
                task_queue=settings.stepgate_task_queue,
            )
            if drive:
                await drive(handle)
            try:
                await handle.result()
            except Exception:  # failed and cancelled runs are part of what we record
                pass
            history = await handle.fetch_history()
            path = HERE / f"{name}.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
            written.append(path.name)
    return written


async def main() -> None:
    settings = Settings(stepgate_task_queue=f"record-{uuid.uuid4()}")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(settings),
    )
    try:
        print("\n".join(await record(env.client, settings)))
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
