"""Agent steps: what a long loop costs in history, against a hand-written loop, and how fast a
decision at a call gate makes the call run.

    python -m bench.agent [--turns 50] [--pairs 3] [--gated 20] [--json PATH]

One dev server, a worker in this process, one scripted OpenAI-compatible model on loopback.
Three figures:
- an agent of `--turns` tool turns (then its reply): its history's events and bytes;
- per-turn overhead: the agent step against bench/agent_baseline.py, a hand-written Temporal loop
  calling the same activities (llm.chat, then the tool) on the same worker, run by run in
  interleaved pairs (which goes first alternates): the ratio of the medians, and the
  milliseconds a turn costs more;
- `--gated` calls of a high-risk tool, each waiting at its gate: the gate opening after the
  model's reply, and the call starting after the decision was sent (p50, p90).
`--json PATH` writes the figures in bench/docs.py's published form.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import default_registry
from activities.config import Settings
from activities.context import ToolContext
from activities.registry import tool
from activities.runtime import ToolActivities
from bench.agent_baseline import AgentBaselineWorkflow
from bench.stack import temporal_cli
from tests.tools.chat import ScriptedAgent
from tests.tools.server import LocalServer
from worker import build_worker, workflow_runner
from workflows.client import make_data_converter
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.language.validation import validate_definition
from workflows.models import Decision, PipelineInput
from workflows.pipeline import PipelineWorkflow

STARTED: dict[str, float] = {}  # a call's idempotency key: when its tool began (perf_counter)
BEGUN: dict[str, asyncio.Event] = {}  # set when that call began (the worker runs in this loop)
TIMES = "\u00d7"


class Probe(BaseModel):
    n: int = 0


class Seen(BaseModel):
    n: int
    at: float


@tool("bench.read", "1.0.0", risk="low")
async def bench_read(inp: Probe, ctx: ToolContext) -> Seen:
    """Read something: a low-risk call, run unasked."""
    return Seen(n=inp.n, at=time.time())


@tool("bench.change", "1.0.0", risk="high")
async def bench_change(inp: Probe, ctx: ToolContext) -> Seen:
    """Change something: a high-risk call, gated."""
    STARTED[ctx.idempotency_key] = time.perf_counter()
    BEGUN.setdefault(ctx.idempotency_key, asyncio.Event()).set()
    return Seen(n=inp.n, at=time.time())


INSTRUCTIONS = "Read n from 1 to the end, one a turn; then say done."
AGENT = """
name: bench_agent
steps:
  - id: agent
    agent:
      instructions: {instructions}
      input: go
      tools:
        - bench.read
        - {{tool: bench.change, approval: {{approvers: ["role:bench"]}}}}
      max_turns: {max_turns}
"""


def definition(max_turns: int) -> Any:
    registry = registry_()
    text = AGENT.format(instructions=INSTRUCTIONS, max_turns=max_turns)
    report = validate_definition(yaml.safe_load(text), registry)
    if report.definition is None:
        raise SystemExit(f"bench definition invalid: {report.errors}")
    return report.definition


def registry_() -> Any:
    registry = default_registry(entry_points=False)
    registry.add(bench_read)
    registry.add(bench_change)
    return registry


def script(turns: int, function: str) -> ScriptedAgent:
    return ScriptedAgent(*[[(function, {"n": k})] for k in range(1, turns + 1)], "done")


async def agent_run(client: Client, queue: str, d: Any, tag: str) -> tuple[float, str]:
    started = time.perf_counter()
    handle = await client.start_workflow(
        PipelineWorkflow.run, PipelineInput(definition=d), id=f"{tag}-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )  # fmt: skip
    result = await handle.result()
    if result.state != "completed":
        raise RuntimeError(f"agent run {handle.id}: {result}")
    return (time.perf_counter() - started) * 1000, handle.id


async def baseline_run(client: Client, queue: str, d: Any, turns: int) -> tuple[float, str]:
    agent = d.steps[0].agent
    tools = [
        {"name": e.function, "description": e.description, "parameters": e.parameters}
        for e in agent.tools
    ]
    inp = {
        "instructions": INSTRUCTIONS,
        "input": "go",
        "tools": tools,
        "functions": {e.function: e.name for e in agent.tools},
        "max_turns": turns + 1,
    }
    wid = f"baseline-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    result = await client.execute_workflow(
        AgentBaselineWorkflow.run, inp, id=wid, task_queue=f"{queue}-baseline"
    )
    if result.get("reply") != "done":
        raise RuntimeError(f"baseline run {wid}: {result}")
    return (time.perf_counter() - started) * 1000, wid


async def history(client: Client, workflow_id: str) -> dict[str, int]:
    found = await client.get_workflow_handle(workflow_id).fetch_history()
    return {"events": len(found.events), "bytes": len(found.to_json().encode())}


async def gated(client: Client, queue: str, d: Any, model: TimedAgent, n: int) -> dict[str, Any]:
    """`n` gated calls, one a turn: the gate opening after the reply, the call after the decision."""
    model.replies = [*[[("bench_change", {"n": k})] for k in range(1, n + 1)], "done"]
    model.replied_at.clear()
    handle = await client.start_workflow(
        PipelineWorkflow.run, PipelineInput(definition=d), id=f"gated-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )  # fmt: skip
    opened_ms: list[float] = []
    started_ms: list[float] = []
    for k in range(1, n + 1):
        gate = f"agent.call-{k}"
        while True:
            status = await handle.query(PipelineWorkflow.status)
            if any(g.gate == gate for g in status.open_gates):
                seen = time.perf_counter()
                break
            await asyncio.sleep(0.002)
        opened_ms.append((seen - model.replied_at[k]) * 1000)
        sent = time.perf_counter()
        decision = Decision(gate=gate, action="approve", actor="b", roles=["bench"])
        await handle.execute_update(PipelineWorkflow.submit_decision, decision)
        key = f"{handle.id}/agent/call-{k}"
        await BEGUN.setdefault(key, asyncio.Event()).wait()
        started_ms.append((STARTED[key] - sent) * 1000)
    await handle.result()
    return {"gate_open_ms": quantiles(opened_ms), "decision_to_call_ms": quantiles(started_ms)}


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 1),
    }


class TimedAgent(ScriptedAgent):
    """The scripted model, noting when it answered each turn."""

    def __init__(self, *replies: Any) -> None:
        super().__init__(*replies)
        self.replied_at: dict[int, float] = {}

    def __call__(self, seen: Any) -> Any:
        reply = super().__call__(seen)
        turn = self.keys[-1].rpartition("turn-")[2]
        if turn.isdigit():
            self.replied_at[int(turn)] = time.perf_counter()
        return reply


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="stepgate-bench-agent-"))
    model = TimedAgent()
    model.replies = script(args.turns, "bench_read").replies
    server = LocalServer().start()
    server.route("POST", "/v1/chat/completions", model)
    queue = f"bench-agent-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        stepgate_task_queue=queue,
        stepgate_data=data,
        stepgate_http_allow=["127.0.0.1"],
        stepgate_llm_base_url=server.url("/v1/"),
        stepgate_llm_model="scripted",
    )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(settings),
    )
    registry = registry_()
    tools = ToolActivities(registry, settings)
    d = definition(args.turns + 1)
    out: dict[str, Any] = {"turns": args.turns, "load_average_at_start": os.getloadavg()}
    try:
        client = env.client
        baseline = Worker(
            client,
            task_queue=f"{queue}-baseline",
            workflows=[AgentBaselineWorkflow],
            activities=tools.activities(),
            workflow_runner=workflow_runner(),
        )
        async with build_worker(client, settings, registry, tools=tools), baseline:
            await agent_run(client, queue, d, "warm")
            await baseline_run(client, queue, d, args.turns)
            agent_ms: list[float] = []
            base_ms: list[float] = []
            ids: tuple[str, str] = ("", "")
            for i in range(args.pairs):
                order = [
                    agent_run(client, queue, d, "agent"),
                    baseline_run(client, queue, d, args.turns),
                ]
                if i % 2:
                    b, a = await order[1], await order[0]
                else:
                    a, b = await order[0], await order[1]
                agent_ms.append(a[0])
                base_ms.append(b[0])
                ids = (a[1], b[1])
            out["agent_history"] = await history(client, ids[0])
            out["baseline_history"] = await history(client, ids[1])
            a50, b50 = statistics.median(agent_ms), statistics.median(base_ms)
            out["agent_ms"] = [round(x) for x in agent_ms]
            out["baseline_ms"] = [round(x) for x in base_ms]
            out["ratio"] = round(a50 / b50, 3)
            out["per_turn_overhead_ms"] = round((a50 - b50) / (args.turns + 1), 1)
            out["gated"] = await gated(client, queue, d, model, args.gated)
        out["load_average_at_end"] = os.getloadavg()
    finally:
        await env.shutdown()
        server.stop()
    return out


def published(r: dict[str, Any], command: str) -> dict[str, Any]:
    a, b, g = r["agent_history"], r["baseline_history"], r["gated"]
    loads = f"load average {r['load_average_at_start'][0]:.1f} at start, {r['load_average_at_end'][0]:.1f} at end"
    return {
        "title": f"An agent step of {r['turns']} tool turns against a hand-written loop",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{os.cpu_count()} CPUs shared with other work, {loads}",
        "command": command,
        "columns": ["measure", "agent step", "hand-written loop", "target"],
        "rows": [
            [
                "history: events / bytes",
                f"{a['events']:,} / {a['bytes'] / 1e6:.2f} MB",
                f"{b['events']:,} / {b['bytes'] / 1e6:.2f} MB",
                "under 10,000 events and 5 MB",
            ],
            [
                f"wall time of a run, median of {len(r['agent_ms'])} interleaved pairs",
                f"{statistics.median(r['agent_ms']) / 1000:.2f} s",
                f"{statistics.median(r['baseline_ms']) / 1000:.2f} s",
                "",
            ],
            [
                "ratio; overhead per turn",
                f"**{r['ratio']:.2f}{TIMES}**; {r['per_turn_overhead_ms']} ms",
                f"1{TIMES}",
                f"\u2264 1.15{TIMES}",
            ],
            [
                "gated call: reply → gate open, p50 / p90",
                f"{g['gate_open_ms']['p50']} / {g['gate_open_ms']['p90']} ms",
                "—",
                "",
            ],
            [
                "gated call: decision sent → call started, p50 / p90",
                f"{g['decision_to_call_ms']['p50']} / {g['decision_to_call_ms']['p90']} ms",
                "—",
                "",
            ],
        ],
    }


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent", description=__doc__.split("\n")[0])
    p.add_argument("--turns", type=int, default=50)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--gated", type=int, default=20)
    p.add_argument("--json", type=Path, help="write the figures in bench/docs.py's form here")
    args = p.parse_args()
    result = asyncio.run(measure(args))
    print(json.dumps(result, indent=2))
    if args.json:
        command = "python -m bench.agent" + "".join(
            f" --{k} {v}"
            for k, v in (("turns", args.turns), ("pairs", args.pairs), ("gated", args.gated))
            if v != p.get_default(k)
        )
        args.json.write_text(json.dumps(published(result, command), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
