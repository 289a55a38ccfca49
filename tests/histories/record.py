"""Record histories of representative runs for the replay test.

Run `python -m tests.histories.record` after a deliberate, versioned change to workflow code
(see README, "Changing workflow code"). It starts its own dev server and rewrites the JSON files.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.config import Settings
from activities.registry import ToolRegistry
from activities.tools.flow import flow_fail
from activities.tools.llm import llm_chat
from activities.tools.transform import data_echo, data_transform
from tests.conftest import temporal_cli
from tests.histories.record_agent import AGENT_SCENARIOS, scripted_models
from tests.histories.record_channels import CHANNEL_SCENARIOS
from tests.histories.record_governed import record_governed
from tests.pipeline.gating import decide, open_gate
from tests.support.fakes import FAKE_TOOLS, OPS_TOOLS
from tests.support.notice_fakes import fake_slack, hold
from tests.support.util import eventually
from worker import build_worker
from workflows.client import make_data_converter
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

HERE = Path(__file__).parent
Handle = WorkflowHandle[Any, Any]

# A drive returns False when the run is to be recorded while still open (parked at a gate).
Drive = Callable[[Client, Handle], Awaitable[bool | None]]
SCENARIOS: dict[str, tuple[str, Drive | None]] = {}
# The recording server suggests continue-as-new early, so a long scenario shows one.
SUGGEST_CONTINUE_AS_NEW = 150


def scenario(name: str, text: str) -> Callable[[Drive], None]:
    def add(drive: Drive) -> None:
        SCENARIOS[name] = (text, drive)

    return add


async def nothing(client: Client, handle: Handle) -> None:
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
async def _gates(client: Client, handle: Handle) -> None:
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
    "gate_form_response",
    """
name: answered
steps:
  - id: review
    tool: test.echo
    with: {msg: deploy}
    approval:
      approvers: ["role:ops"]
      quorum: 2
      form:
        type: object
        required: [ticket]
        properties:
          ticket: {type: string, minLength: 3}
          risk: {type: string, enum: [low, high], default: low}
  - id: use
    needs: [review]
    tool: test.echo
    with: {ticket: "${steps.review.gate.response.ticket}", risk: "${steps.review.gate.response.risk}"}
""",
)
async def _answered(client: Client, handle: Handle) -> None:
    await open_gate(handle, "review")
    # Refused by signal (recorded in the audit), then two approvals with answers.
    await handle.signal(
        PipelineWorkflow.decide,
        {"gate": "review", "action": "approve", "actor": "x", "roles": ["ops"], "response": {}},
    )
    await decide(handle, "review", "approve", actor="alice", response={"ticket": "CHG-1"})
    await decide(
        handle, "review", "approve", actor="bob", response={"ticket": "CHG-2", "risk": "high"}
    )


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
async def _onfail(client: Client, handle: Handle) -> None:
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
async def _escalate(client: Client, handle: Handle) -> None:
    from tests.support.util import eventually

    async def escalated() -> bool:
        g = await open_gate(handle, "wait")
        return g.escalated

    await eventually(escalated, what="escalated")
    await handle.cancel()


@scenario(
    "gate_timers_named",
    """
name: timers_named
steps:
  - id: publish
    tool: test.echo
    with: {msg: hi}
    approval: {approvers: ["role:ops", "user:carol"], timeout: 1h, remind_after: 1s, max_reminders: 1}
""",
)
async def _timers_named(client: Client, handle: Handle) -> None:
    """The gate's timer (named after the gate, its deadline and approvers) rings a reminder, is
    moved to the deadline, and is cancelled by the approval."""

    async def reminded() -> int:
        status = await handle.query(PipelineWorkflow.status)
        return sum(1 for e in status.audit if e.kind == "reminder")

    await eventually(reminded, ok=lambda n: n == 1, what="the reminder")
    await decide(handle, "publish", "approve")


@scenario(
    "modify_lapses_votes_and_stop_tally",
    """
name: tallies
steps:
  - id: pay
    tool: test.echo
    with: {amount: 10, to: acme}
    approval: {stage: before, approvers: ["role:ops"], quorum: 2, rejections_to_reject: 2}
  - id: review
    needs: [pay]
    tool: test.echo
    with: {paid: "${steps.pay.output.amount}"}
    approval: {stage: after, approvers: ["role:ops"], rejections_to_reject: 2}
""",
)
async def _tallies(client: Client, handle: Handle) -> None:
    await open_gate(handle, "pay")
    await decide(handle, "pay", "approve", actor="alice")
    await decide(handle, "pay", "modify", actor="bob", patch={"amount": 12})
    await decide(handle, "pay", "approve", actor="alice")
    await open_gate(handle, "review")
    await decide(handle, "review", "cancel", actor="alice")
    await decide(handle, "review", "reject", actor="bob")


@scenario(
    "child_pipeline_gate",
    """
name: parent
steps:
  - id: prepare
    tool: test.echo
    with: {n: 1}
  - id: child
    needs: [prepare]
    pipeline: approve_child
    with: {n: "${steps.prepare.output.n}"}
output: "${steps.child.output}"
""",
)
async def _child(client: Client, handle: Handle) -> None:
    from tests.support.util import eventually

    async def child_gate_shown() -> bool:
        status = await handle.query(PipelineWorkflow.status)
        return any(g.workflow_id for g in status.open_gates) and status.state == "waiting"

    await eventually(child_gate_shown, what="the child's gate on the parent")
    child = client.get_workflow_handle(f"{handle.id}--child")
    await decide(child, "check", "approve", actor="alice")


# What the plan step of `plan_as_data` proposes (as run input: a plan is data, never the text of
# the definition that runs it).
PLAN = {
    "name": "made",
    "input": {"type": "object", "properties": {"goal": {"type": "string"}}},
    "steps": [{"id": "do", "tool": "test.echo", "with": {"goal": "${input.goal}"}}],
    "output": "${steps.do.output.goal}",
}

CHILD = """
name: approve_child
input: {type: object, properties: {n: {type: integer}}, required: [n]}
steps:
  - id: check
    tool: test.echo
    with: {n: "${input.n}"}
    approval: {approvers: ["role:ops"]}
output: "${steps.check.output.n}"
"""


@scenario(
    "continued_as_new_while_parked",
    """
name: parked
steps:
  - id: first
    tool: test.echo
    with: {n: 1}
  - id: gate
    needs: [first]
    tool: test.echo
    with: {seen: "${steps.first.output.n}"}
    approval: {approvers: ["role:ops"], quorum: 2, remind_after: 1h}
output: "${steps.gate.output.seen}"
""",
)
async def _continued(client: Client, handle: Handle) -> bool:
    await open_gate(handle, "gate")
    await decide(handle, "gate", "approve", actor="alice")
    for i in range(80):
        await handle.signal(
            PipelineWorkflow.decide,
            {"gate": "gate", "action": "approve", "actor": f"x{i}", "roles": ["dev"]},
        )
    from tests.support.util import eventually

    async def continued() -> bool:
        return (await handle.query(PipelineWorkflow.status)).continued >= 1

    await eventually(continued, what="continued as new")
    # Recorded parked: the run is still waiting at its gate, in its second run.
    return False


@scenario(
    "for_each_per_item_gates",
    """
name: each
steps:
  - id: files
    tool: test.echo
    with: {list: [{path: a.py}, {path: b.py}, {path: c.py}]}
  - id: write
    needs: [files]
    for_each: "${steps.files.output.list}"
    max_parallel: 2
    tool: test.echo
    with: {path: "${item.path}", n: "${index}"}
    approval: {approvers: ["role:ops"], review: "write ${item.path}?", priority: high}
    compensate: {tool: test.ledger, with: {entry: "undo ${item.path}"}}
output: "${steps.write.output}"
""",
)
async def _each(client: Client, handle: Handle) -> None:
    await open_gate(handle, "write.2")
    await decide(handle, "write.2", "approve")
    await decide(handle, "write.0", "modify", patch={"path": "z.py"})
    await decide(handle, "write.1", "skip")


@scenario(
    "for_each_gates_wait_for_slot",
    """
name: each_slot
steps:
  - id: files
    tool: test.echo
    with: {list: [a.py, b.py, c.py]}
  - id: write
    needs: [files]
    for_each: "${steps.files.output.list}"
    max_parallel: 1
    tool: test.echo
    with: {path: "${item}"}
    approval: {approvers: ["role:ops"], review: "write ${item}?"}
output: "${steps.write.output}"
""",
)
async def _each_slot(client: Client, handle: Handle) -> None:
    for uid in ("write.0", "write.1", "write.2"):
        await open_gate(handle, uid)
    for uid in ("write.2", "write.1", "write.0"):
        await decide(handle, uid, "approve")


@scenario(
    "for_each_item_gates_notify",
    """
name: each_notify
steps:
  - id: files
    tool: test.echo
    with: {list: [a.py, b.py]}
  - id: write
    needs: [files]
    for_each: "${steps.files.output.list}"
    tool: test.echo
    with: {path: "${item}"}
    approval:
      approvers: ["role:ops"]
      review: "write ${item}?"
      remind_after: 300ms
      max_reminders: 1
      notify: {tool: test.ledger, with: {sleep: 0}}
output: "${steps.write.output}"
""",
)
async def _each_notify(client: Client, handle: Handle) -> None:
    async def reminded() -> int:
        status = await handle.query(PipelineWorkflow.status)
        return sum(a.kind == "reminder" for a in status.audit)

    await eventually(reminded, ok=lambda n: n >= 2, what="each item gate reminded once")
    for uid in ("write.1", "write.0"):
        await decide(handle, uid, "approve")


SCENARIOS["for_each_over_stored_list"] = (
    """
name: each_stored
steps:
  - id: fetch
    tool: test.echo
    with: {body: {services: [api, db, web], padding: "%s"}}
    max_output_bytes: 1024
  - id: restart
    needs: [fetch]
    for_each: "${steps.fetch.output.body.services}"
    tool: test.echo
    with: {service: "${item}"}
output: "${steps.restart.output}"
"""
    % ("p" * 2_000),
    nothing,
)


@scenario(
    "repeat_poll_with_waits",
    """
name: poll
steps:
  - id: wait
    tool: test.poll
    with: {done_after: 3, last: "${previous.output.status}"}
    repeat: {until: "output.status == 'done'", every: 200ms, max_iterations: 5}
    check: {condition: "output.calls > 0", message: "no call counted"}
output: "${steps.wait.output.calls}"
""",
)
async def _poll(client: Client, handle: Handle) -> None:
    return None


@scenario(
    "plan_as_data",
    """
name: planned
steps:
  - id: plan
    tool: test.echo
    with: {def: "${input.plan}"}
  - id: execute
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.def}", allowed_tools: [test.echo], max_steps: 3}
    with: {goal: ship}
    approval: {approvers: ["role:ops"]}
output: "${steps.execute.output}"
""",
)
async def _plan(client: Client, handle: Handle) -> None:
    gate = await open_gate(handle, "execute")
    await decide(handle, "execute", "approve", digest=gate.digest)


# The ops deploy shape: a parallel step fails while the other succeeds, often in the same
# workflow task; the step between them must not be left started with no call made.
SCENARIOS["parallel_failure"] = (
    """
name: parallel_failure
steps:
  - id: list_agents
    tool: test.echo
    with: {agents: [a1, a2]}
  - id: select_agent
    needs: [list_agents]
    tool: test.echo
    with: {agent: "${steps.list_agents.output.agents}"}
  - id: validate_repo
    tool: flow.fail
    local: false
    with: {message: "repository not found (404)"}
""",
    nothing,
)

SCENARIOS["local_steps"] = (
    """
name: local_steps
steps:
  - id: constant
    tool: data.echo
    with: {value: {items: [1, 2, 3]}}
  - id: shape
    needs: [constant]
    tool: data.transform
    with: {data: "${steps.constant.output.value}", expression: "length(items)"}
  - id: optional
    needs: [shape]
    tool: flow.fail
    on_error: continue
    with: {message: "an optional check failed"}
  - id: remote
    needs: [shape]
    tool: test.echo
    with: {n: "${steps.shape.output.result}"}
output: {n: "${steps.remote.output.n}", optional: "${steps.optional.status}"}
""",
    nothing,
)


@scenario(
    "packed_snapshot_parked_and_approved",
    """
name: packed
steps:
  - id: fetch
    tool: data.echo
    local: true
    with: {value: "${input.who}"}
  - id: deploy
    needs: [fetch]
    tool: data.echo
    local: true
    approval: {stage: before, approvers: ["role:ops"]}
    with: {value: "${steps.fetch.output.value}"}
  - id: verify
    needs: [deploy]
    tool: data.echo
    local: true
    with: {value: "${steps.deploy.output.value}"}
output: {value: "${steps.verify.output.value}"}
""",
)
async def _packed(client: Client, handle: Handle) -> None:
    """The shape every run has had since its input went compact and its snapshots packed: a
    parked run (its memo and search attributes written without defaults) approved by update,
    then its local calls to the end."""
    await open_gate(handle, "deploy")
    await decide(handle, "deploy", "approve", actor="alice")


SCENARIOS.update(AGENT_SCENARIOS)
SCENARIOS.update(CHANNEL_SCENARIOS)


async def record(client: Client, settings: Settings, only: list[str]) -> list[str]:
    registry = ToolRegistry(
        [*FAKE_TOOLS, *OPS_TOOLS, data_echo, data_transform, flow_fail, llm_chat, fake_slack, hold]
    )
    written = []
    with scripted_models() as url:
        model = {"stepgate_llm_base_url": url, "stepgate_llm_model": "scripted"}
        return await _record(client, settings.model_copy(update=model), registry, only, written)


async def _record(
    client: Client, settings: Settings, registry: ToolRegistry, only: list[str], written: list[str]
) -> list[str]:
    async with build_worker(client, settings, registry):
        for name, (text, drive) in SCENARIOS.items():
            if only and name not in only:
                continue
            report = validate_definition(
                yaml.safe_load(text), registry, catalog={"approve_child": 1}
            )
            assert report.definition is not None, report.errors
            child = validate_definition(yaml.safe_load(CHILD), registry).definition
            assert child is not None
            handle = await client.start_workflow(
                PipelineWorkflow.run,
                PipelineInput(
                    definition=report.definition,
                    input={"who": "me", "plan": PLAN},
                    pipelines={"approve_child": child},
                ),
                # The replay test names each history after its file: the ids must match, since a
                # child run's id is derived from its parent's.
                id=name,
                task_queue=settings.stepgate_task_queue,
            )
            finish = await drive(client, handle) if drive else None
            if finish is not False:
                try:
                    await handle.result()
                except Exception:  # failed and cancelled runs are part of what we record
                    pass
            # The latest run of the workflow id: for a continued run, the one after the carry.
            history = await client.get_workflow_handle(handle.id).fetch_history()
            if finish is False:
                await client.get_workflow_handle(handle.id).terminate("recorded while parked")
            written.append(write(name, history.to_json()))
        for stem, workflow_id in await record_governed(
            client, settings.stepgate_task_queue, registry, only
        ):
            handle = client.get_workflow_handle(workflow_id)
            history = await handle.fetch_history()
            written.append(write(stem, history.to_json()))
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("recorded while parked")
    return written


def write(stem: str, history_json: str) -> str:
    path = HERE / f"{stem}.json"
    path.write_text(json.dumps(json.loads(history_json), indent=1) + "\n")
    return path.name


async def main() -> None:
    # The memory of the governed scenarios goes to a folder of its own, not the operator's.
    data = Path(tempfile.mkdtemp(prefix="stepgate-record-"))
    settings = Settings(
        stepgate_task_queue=f"record-{uuid.uuid4()}",
        stepgate_data=data,
        stepgate_http_allow=["127.0.0.1"],  # the scenarios' scripted model
    )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(settings),
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW}",
        ],
    )
    try:
        # Names on the command line record just those (a history already kept is the proof that
        # runs recorded earlier still replay: re-record it only when its scenario changed).
        print("\n".join(await record(env.client, settings, sys.argv[1:])))
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
