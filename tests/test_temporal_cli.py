"""The contract with the plain Temporal CLI: list by StepgateAwaiting, decide by signal, query status."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import uuid

import pytest
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.conftest import ROOT, temporal_cli
from tests.pipeline.gating import open_gate
from tests.support.util import eventually
from tests.test_durability import definition
from worker import build_worker
from workflows.pipeline import PipelineWorkflow


async def cli(settings: Settings, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(),
        *args,
        "--address",
        settings.temporal_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_cli_lists_awaiting_run_signals_decision_and_queries_status(
    client: Client, settings: Settings
) -> None:
    """A run waiting for role:ops is listed by the CLI's visibility query; a `decide` signal sent
    by the `temporal` binary approves it; `workflow query --type status` prints the status."""
    role = f"ops{uuid.uuid4().hex[:8]}"  # unique, so other tests' runs do not show up
    inp = definition(
        f"""
name: deploy_application
steps:
  - id: create_job
    tool: data.echo
    with: {{value: deployed}}
    approval: {{approvers: ["role:{role}"]}}
output: "${{steps.create_job.output.value}}"
"""
    )
    async with build_worker(client, settings, default_registry(entry_points=False)):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            inp,
            id=f"cli-{uuid.uuid4()}",
            task_queue=settings.stepgate_task_queue,
        )
        await open_gate(handle, "create_job")

        async def listed() -> bool:
            out = await cli(
                settings, "workflow", "list", "--query", f"StepgateAwaiting = 'role:{role}'"
            )
            return handle.id in out

        await eventually(listed, within=30, what="run listed by StepgateAwaiting")
        queried = await cli(
            settings,
            "workflow",
            "query",
            "--workflow-id",
            handle.id,
            "--type",
            "status",
            "--output",
            "json",
        )
        assert '"waiting"' in queried and "create_job" in queried
        decision = {"gate": "create_job", "action": "approve", "actor": "alice", "roles": [role]}
        await cli(
            settings,
            "workflow",
            "signal",
            "--workflow-id",
            handle.id,
            "--name",
            "decide",
            "--input",
            json.dumps(decision),
        )
        result = await handle.result()
    assert result.output == "deployed"


@pytest.mark.server  # starts `python worker.py`
def test_worker_exits_with_clear_message_when_temporal_is_unreachable() -> None:
    """With nothing listening at TEMPORAL_ADDRESS the worker gives up after the bounded wait."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGATE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS="127.0.0.1:1", TEMPORAL_CONNECT_TIMEOUT_S="1", STEPGATE_LOG_FORMAT="json"
    )
    proc = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "Temporal at 127.0.0.1:1 is unreachable" in proc.stderr


DOCS_ADDRESS = "127.0.0.1:7233"


def documented_commands() -> list[list[str]]:
    """The `temporal` command lines of docs/gates.md's "Deciding with the plain Temporal CLI",
    as argument lists, continuation lines joined."""
    text = (ROOT / "docs" / "gates.md").read_text()
    part = text.split("## Deciding with the plain Temporal CLI", 1)[1]
    block = part.split("```console\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [shlex.split(line[2:]) for line in joined.splitlines() if line.startswith("$ ")]


async def run_documented(
    settings: Settings, argv: list[str], ids: dict[str, str], *, ok: bool = True
) -> str:
    """One documented command, as written but for the address, the run's id and the role; its
    output (stderr too when `ok` is False: a command expected to fail)."""
    args = []
    for arg in argv[1:]:
        for old, new in ids.items():
            arg = arg.replace(old, new)
        args.append(arg)
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert (proc.returncode == 0) == ok, (args, proc.returncode, err.decode())
    return out.decode() + ("" if ok else err.decode())


def what(argv: list[str]) -> str:
    """`signal decide`, `query status`, `update submit_decision`, ...: a command's verb and name."""
    flag = "--name" if "--name" in argv else "--type"
    return f"{argv[2]} {argv[argv.index(flag) + 1]}" if flag in argv else argv[2]


async def test_the_documented_cli_commands_list_pause_decide_both_ways_and_audit(
    client: Client, settings: Settings
) -> None:
    """Every command docs/gates.md shows runs as written against a real server: a waiting run is
    listed and queried, paused and resumed, its gate approved by the `decide` signal; another
    run's gate is approved by the `submit_decision` update, whose answer is the gate's new state
    (refused, with a message and a failing exit, for a principal the gate does not name); the
    audit lists what happened."""
    commands = documented_commands()
    verbs = [tuple(c[1:3]) for c in commands]
    assert ("workflow", "signal") in verbs and ("workflow", "update") in verbs
    assert all(c[0] == "temporal" and c[c.index("--address") + 1] == DOCS_ADDRESS for c in commands)
    role = f"ops{uuid.uuid4().hex[:8]}"
    inp = definition(
        f"""
name: deploy_application
steps:
  - id: create_job
    tool: data.echo
    with: {{value: deployed}}
    approval: {{approvers: ["role:{role}"]}}
output: "${{steps.create_job.output.value}}"
"""
    )
    async with build_worker(client, settings, default_registry(entry_points=False)):
        handles = [
            await client.start_workflow(
                PipelineWorkflow.run,
                inp,
                id=f"cli-docs-{uuid.uuid4()}",
                task_queue=settings.stepgate_task_queue,
            )
            for _ in range(2)
        ]
        for handle in handles:
            await open_gate(handle, "create_job")
        by_signal, by_update = handles
        swap = {DOCS_ADDRESS: settings.temporal_address, "role:ops": f"role:{role}"}
        swap['["ops"]'] = f'["{role}"]'
        # The update from a principal the gate does not name is refused, and the CLI says so.
        update = next(c for c in commands if c[2] == "update")
        wrong = {**swap, '["ops"]': '["nobody"]', "W": by_update.id}
        refused = await run_documented(settings, update, wrong, ok=False)
        assert "may not decide gate 'create_job'" in refused, refused
        outputs = {}
        for argv in commands:
            ids = {**swap, "W": (by_update if argv[2] == "update" else by_signal).id}
            if argv[2] == "list":

                async def listed(argv: list[str] = argv, ids: dict[str, str] = ids) -> bool:
                    return by_signal.id in await run_documented(settings, argv, ids)

                await eventually(listed, within=30, what="run listed by StepgateAwaiting")
                continue
            if what(argv) == "query audit":
                await by_signal.result()  # the audit once the signalled decision has run
            outputs[what(argv)] = await run_documented(settings, argv, ids)
        assert (await by_signal.result()).output == "deployed"
        assert (await by_update.result()).output == "deployed"
    answer = json.loads(outputs["update submit_decision"])["result"]
    assert answer["gate"] == "create_job" and answer["state"] == "approved", answer
    assert [v["actor"] for v in answer["approvals"]] == ["alice"]
    assert '"waiting"' in outputs["query status"] or "waiting" in outputs["query status"]
    audit = outputs["query audit"]
    for kind in ("pause", "resume", "decision"):
        assert kind in audit, (kind, audit)
