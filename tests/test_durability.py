"""Crash recovery: a worker killed mid-step, and a gate that waits across a worker restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.support.ledger import Ledger, serve_ledger
from tests.support.util import eventually
from tests.support.workers import WorkerProcess, worker_env
from tests.tools.chat import ScriptedAgent, serving
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow


def definition(text: str) -> PipelineInput:
    report = validate_definition(yaml.safe_load(text), default_registry(entry_points=False))
    assert report.definition is not None, report.errors
    return PipelineInput(definition=report.definition)


async def killed_mid_call(
    client: Client, env: dict[str, str], inp: PipelineInput, id_: str, ledger: Ledger, logs: Path
) -> Any:
    """Start `inp` on a worker process, SIGKILL it while its first call to the ledger is in
    flight (the outside world then finishes that call), and let a second worker finish the run;
    the run's result, after the second worker drained and exited cleanly on SIGTERM."""
    first = WorkerProcess(env, logs / "worker1.log")
    handle = await client.start_workflow(
        PipelineWorkflow.run, inp, id=id_, task_queue=env["STEPGATE_TASK_QUEUE"]
    )
    try:
        await eventually(ledger.arrived.is_set, within=60, what="first call in flight")
        first.kill()
        ledger.hold.set()
    finally:
        first.stop()
    second = WorkerProcess(env, logs / "worker2.log")
    try:
        return await asyncio.wait_for(handle.result(), timeout=90)
    finally:
        assert second.stop() == 0


async def test_worker_sigkill_mid_step_completes_with_side_effect_once(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A worker killed with SIGKILL during a call is replaced; the run completes and the
    side effect guarded by the idempotency key happens exactly once."""
    (settings.stepgate_data / "definitions").mkdir(parents=True)
    ledger = Ledger()
    with serve_ledger(ledger) as url:
        ledger.hold.clear()
        inp = definition(
            f"""
name: charge
steps:
  - id: charge
    tool: http.request
    with: {{method: POST, url: "{url}", json: {{amount: 42}}}}
    heartbeat_timeout: 1s
    timeout: 30s
    retry: {{max_attempts: 10, initial_interval: 200ms, backoff: 1.0}}
  - id: receipt
    needs: [charge]
    tool: data.echo
    with: {{value: "${{steps.charge.output.json.n}}"}}
output: "${{steps.receipt.output.value}}"
"""
        )
        wid = f"kill-{uuid.uuid4()}"
        result = await killed_mid_call(client, worker_env(settings), inp, wid, ledger, tmp_path)
    key = f"{wid}/charge"
    assert result.state == "completed" and result.output == 1
    assert ledger.requests_by_key[key] >= 2, "the step was retried after the crash"
    assert ledger.applied == [key], "the side effect happened exactly once"


async def test_gate_deadline_fires_on_time_while_no_worker_runs(
    client: Client, settings: Settings
) -> None:
    """A gate's durable timer fires at its deadline even with every worker down; a new worker
    then applies on_timeout and finishes the run."""
    registry = default_registry(entry_points=False)
    inp = definition(
        """
name: timed
steps:
  - id: approve_me
    tool: data.echo
    with: {value: 1}
    approval: {approvers: ["role:ops"], timeout: 2s, on_timeout: approve}
"""
    )
    handle = await client.start_workflow(
        PipelineWorkflow.run,
        inp,
        id=f"timer-{uuid.uuid4()}",
        task_queue=settings.stepgate_task_queue,
    )
    async with build_worker(client, settings, registry):

        async def opened() -> bool:
            return bool((await handle.query(PipelineWorkflow.status)).open_gates)

        await eventually(opened, what="gate open")
        deadline = (await handle.query(PipelineWorkflow.status)).open_gates[0].deadline
    assert deadline is not None

    async def timer_fired() -> bool:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                return True
        return False

    await eventually(timer_fired, within=30, what="timer fired with no worker running")
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            fired_at = event.event_time.ToDatetime(tzinfo=deadline.tzinfo)
    assert abs(fired_at - deadline) < timedelta(seconds=2)
    async with build_worker(client, settings, registry):
        result = await handle.result()
        status = await handle.query(PipelineWorkflow.status)
    assert result.steps == {"approve_me": "succeeded"}
    assert [(a.kind, a.action) for a in status.audit] == [("timeout", "approve")]


async def test_worker_killed_mid_agent_loop_repeats_no_completed_turn_or_call(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """An agent's worker is killed with SIGKILL while a call it decided is in flight; a new
    worker finishes the loop: no model turn that had completed is asked again, the call in flight
    is retried under its own idempotency key and takes effect once, and so does every other."""
    (settings.stepgate_data / "definitions").mkdir(parents=True)
    ledger, model = (
        Ledger(),
        ScriptedAgent(
            [("http_request", {"json": {"amount": 1}})],
            [("http_request", {"json": {"amount": 2}})],
            "paid twice",
        ),
    )
    with serving(model), serve_ledger(ledger) as url:
        ledger.hold.clear()
        inp = definition(
            f"""
name: agent_pays
steps:
  - id: pay
    heartbeat_timeout: 1s
    retry: {{max_attempts: 10, initial_interval: 200ms, backoff: 1.0}}
    agent:
      instructions: pay what is asked
      input: pay 1 then 2
      tools:
        - {{tool: http.request, with: {{method: POST, url: "{url}"}}, policy: auto}}
"""
        )
        env = worker_env(
            settings,
            STEPGATE_LLM_BASE_URL=model.url,
            STEPGATE_LLM_MODEL="scripted",
        )
        wid = f"agent-kill-{uuid.uuid4()}"
        result = await killed_mid_call(client, env, inp, wid, ledger, tmp_path)
    calls = [f"{wid}/pay/call-1", f"{wid}/pay/call-2"]
    assert result.state == "completed"
    assert ledger.requests_by_key[calls[0]] >= 2, "the call in flight was retried"
    assert ledger.applied == calls, "each call took effect exactly once"
    turns = [k.rpartition("/")[2] for k in model.keys]
    assert turns == ["turn-1", "turn-2", "turn-3"], "no completed turn was asked again"
