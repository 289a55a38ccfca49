"""Fault drills: prove that crashes and restarts lose nothing.

`make drill` (python -m bench.drill) runs four drills against real processes on loopback:

1. worker SIGKILLed again and again while pipelines run, each with a side effect sent to a
   ledger under its idempotency key: every run completes, every side effect lands exactly once;
2. the dev server (SQLite file) stopped and restarted while runs wait at gates and while steps
   run: all resume and complete, no decision is lost;
3. the API killed and started again while a client follows /events: the client resumes with
   Last-Event-ID and misses no state;
4. a decision storm: many concurrent decisions, half of them invalid: the valid ones are applied
   exactly once, the invalid ones refused with a clear error, no workflow task fails;
5. the same through the HTTP API on one gate (tests/support/storm.py): 50 voters each voting twice and
   100 invalid decisions at once: every vote applied once, every invalid one its 4xx, no 5xx;
6. nothing accepted left stuck (bench/drill_bounds.py): a thousand local results of 3 KB, a loop
   whose condition never holds, a definition one run could not hold, a run stuck in its
   workflow task cancelled through the API.

`DRILL_SCALE=quick` shrinks every drill; the test suite runs that size.

`DRILL_TARGET=cluster` (default `dev`) runs the cluster drill instead (bench/drill_cluster.py): the
production topology of `make cluster` (PostgreSQL, the Temporal server 1.29.1, two versioned
workers, the API, the governed memory on the same PostgreSQL) while runs execute, wait at gates
and write to the memory: a worker SIGKILLed, the Temporal server restarted, PostgreSQL restarted,
a worker of a new build rolled out. Every run completes, every side effect lands once, every
decision is counted once, the memory keeps its rows. `DRILL_SCALE` applies there too.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities import default_registry
from api import json_patch
from api.errors import run_closed
from bench.drill_bounds import drill_bounds
from bench.stack import HOST, ROOT, child_env, spawn_api, start_server
from tests.support import storm
from tests.support.ledger import Ledger, serve_ledger
from tests.support.procs import Child, Processes, free_port
from workflows.language.validation import validate_definition
from workflows.models import Decision, PipelineInput
from workflows.pipeline import PipelineWorkflow
from workflows.rules.pages import PageInput

Handle = WorkflowHandle[Any, Any]
CLOSED = {"completed", "failed", "cancelled"}
# Drill 5, at both scales: the storm that once lost votes (50 voters twice, 100 invalid).
STORM_VOTERS = 50
STORM_OUTSIDERS = 10
STORM_INVALID = 100


@dataclass(frozen=True)
class DrillScale:
    pipelines: int  # drill 1
    kills: int
    parked: int  # drill 2: runs at a gate; as many again mid-step
    storm_runs: int  # drill 4
    storm_valid_per_run: int
    name: str
    bound_items: int = 1_000  # drill 6


SCALES = {
    "quick": DrillScale(
        pipelines=12,
        kills=3,
        parked=4,
        storm_runs=10,
        storm_valid_per_run=5,
        name="quick",
        bound_items=300,
    ),
    "full": DrillScale(
        pipelines=50, kills=8, parked=20, storm_runs=100, storm_valid_per_run=5, name="full"
    ),
}


# ---- the stack: a dev server on a file, real worker.py processes, the real API ----------------


@dataclass
class DrillStack:
    procs: Processes
    workdir: Path
    port: int
    task_queue: str = field(default_factory=lambda: f"drill-{uuid.uuid4().hex[:8]}")
    server: Child | None = None
    workers: list[Child] = field(default_factory=list)
    api: Child | None = None
    api_port: int = 0
    api_key: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    client: Client | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = child_env(self.workdir, self.address)
        # The drills' ledgers listen on loopback, which tools may not reach unless allowed.
        env.update(
            STEPGATE_TASK_QUEUE=self.task_queue,
            STEPGATE_LOG_LEVEL="WARNING",
            STEPGATE_HTTP_ALLOW=HOST,
            # As `make run` does: every worker.py is the same build and makes it current.
            STEPGATE_SET_CURRENT_VERSION="true",
        )
        return env

    async def start_server(self) -> None:
        # The SQLite file lives in workdir, so a restart on the same port finds every run again.
        self.server, _, self.client = await start_server(self.procs, self.workdir, port=self.port)

    def stop_server(self) -> None:
        if self.server:
            self.procs.stop(self.server)
            self.server = None

    async def start_worker(self, extra_env: dict[str, str] | None = None) -> Child:
        """`python worker.py` with the stack's environment and `extra_env` on top."""
        name = f"worker-{len(self.workers) + 1}-{uuid.uuid4().hex[:4]}"
        env = {**self.env, **(extra_env or {})}
        child = self.procs.spawn(name, [sys.executable, "worker.py"], env, ROOT)
        self.workers.append(child)
        return child

    def kill_worker(self, child: Child) -> None:
        """SIGKILL: no draining, as a crash or the OOM killer would do it."""
        child.popen.kill()
        child.popen.wait(timeout=10)
        if child in self.procs.children:
            self.procs.children.remove(child)
        self.workers.remove(child)

    async def start_api(self, more_keys: dict[str, list[str]] | None = None) -> str:
        """The API with the drill's admin key, plus a key per principal in `more_keys` (the
        principal -> roles; their keys end up in `self.keys`)."""
        if not self.api_port:
            self.api_port = free_port()
            self.api_key = secrets.token_urlsafe(24)
        self.keys = {"drill": self.api_key} | {
            p: secrets.token_urlsafe(24) for p in more_keys or {}
        }
        roles = {"drill": ["admin", "ops"], **(more_keys or {})}
        keys = self.workdir / "api-keys.yaml"
        keys.write_text(
            yaml.safe_dump(
                [{"key": k, "principal": p, "roles": roles[p]} for p, k in self.keys.items()]
            )
        )
        keys.chmod(0o600)
        env = {
            **self.env,
            "STEPGATE_API_HOST": HOST,
            "STEPGATE_API_PORT": str(self.api_port),
            "STEPGATE_API_KEYS_FILE": str(self.workdir / "api-keys.yaml"),
        }
        self.api, url = await spawn_api(self.procs, env, self.api_port)
        return url

    def stop_api(self) -> None:
        if self.api:
            self.procs.stop(self.api)
            self.api = None

    def kill_api(self) -> None:
        """SIGKILL, as a crash would. A SIGTERM does not end `python -m api` while an /events
        stream is open (uvicorn waits for the response to finish), so stop_api waited out its
        10 s grace and sent SIGKILL all the same."""
        if self.api:
            self.api.popen.kill()
            self.api.popen.wait(timeout=10)
            self.procs.children.remove(self.api)
            self.api = None


def snapshot(text: str) -> PipelineInput:
    report = validate_definition(yaml.safe_load(text), default_registry(entry_points=False))
    if report.definition is None:
        raise ValueError("; ".join(str(e) for e in report.errors))
    return PipelineInput(definition=report.definition)


CHARGE_STEP = "charge"


def charge_step(url: str) -> dict[str, Any]:
    """A POST to the ledger at `url` under the call's idempotency key (ledger key
    `<workflow id>/charge`), retried through worker deaths and restarts."""
    return {
        "id": CHARGE_STEP,
        "tool": "http.request",
        "with": {"method": "POST", "url": url, "json": {"amount": 1}},
        "heartbeat_timeout": "1s",
        "retry": {
            "max_attempts": 50,
            "initial_interval": "200ms",
            "backoff": 1.5,
            "max_interval": "2s",
        },
    }


def charge_pipeline(url: str, *, gated: bool = False) -> PipelineInput:
    """prepare -> charge (charge_step) -> receipt; `gated`: the charge waits for a `role:ops`
    approval first (gate `charge`)."""
    charge = {**charge_step(url), "needs": ["prepare"]}
    if gated:
        charge["approval"] = {"approvers": ["role:ops"]}
    definition = {
        "name": "drill_charge",
        "steps": [
            {"id": "prepare", "tool": "data.echo", "with": {"value": 1}},
            charge,
            {
                "id": "receipt",
                "needs": [CHARGE_STEP],
                "tool": "data.echo",
                "with": {"value": "${steps.charge.output.json.key}"},
            },
        ],
        "output": "${steps.receipt.output.value}",
    }
    return snapshot(yaml.safe_dump(definition))


async def start(stack: DrillStack, inp: PipelineInput, prefix: str) -> Handle:
    assert stack.client is not None
    return await stack.client.start_workflow(
        PipelineWorkflow.run,
        inp,
        id=f"{prefix}-{uuid.uuid4().hex[:10]}",
        task_queue=stack.task_queue,
    )


async def outcome(handle: Handle, timeout_s: float) -> str:
    """The run's final state as the status query reports it ('failed' if it raised)."""
    try:
        await asyncio.wait_for(handle.result(), timeout=timeout_s)
    except TimeoutError:
        return "timed out"
    except Exception:
        pass
    return (await handle.query(PipelineWorkflow.status)).state


async def task_failures(handles: list[Handle]) -> int:
    """Workflow task failures across these runs' histories (a determinism or code bug)."""
    count = 0
    for h in handles:
        async for event in h.fetch_history_events():
            count += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return count


# ---- drill 1: SIGKILL the worker again and again ---------------------------------------------


async def drill_worker_kills(stack: DrillStack, scale: DrillScale) -> dict[str, Any]:
    ledger = Ledger(delay_s=0.3)
    with serve_ledger(ledger) as url:
        inp = charge_pipeline(url)
        worker = stack.workers[0] if stack.workers else await stack.start_worker()
        handles = [await start(stack, inp, "kill") for _ in range(scale.pipelines)]
        for _ in range(scale.kills):
            # Wait for calls in flight, then pull the plug on the worker making them.
            ledger.arrived.clear()
            await asyncio.to_thread(ledger.arrived.wait, 30)
            stack.kill_worker(worker)
            worker = await stack.start_worker()
        states = await asyncio.gather(*(outcome(h, 180) for h in handles))
        failures = await task_failures(handles)
    effects = ledger.check({f"{h.id}/{CHARGE_STEP}" for h in handles})
    return {
        "runs": len(handles),
        "kills": scale.kills,
        "completed": states.count("completed"),
        **effects,
        "workflow_task_failures": failures,
        "ok": states.count("completed") == len(handles)
        and effects["unexpected_side_effects"] == 0
        and effects["missing_side_effects"] == 0,
    }


# ---- drill 2: restart the Temporal server under load -----------------------------------------


async def drill_server_restart(stack: DrillStack, scale: DrillScale) -> dict[str, Any]:
    ledger = Ledger(delay_s=1.5)
    with serve_ledger(ledger) as url:
        gated = snapshot(
            """
name: drill_gated
steps:
  - id: work
    tool: data.echo
    with: {value: ok}
    approval: {approvers: ["role:ops"]}
"""
        )
        busy = snapshot(
            f"""
name: drill_busy
steps:
  - id: call
    tool: http.request
    with: {{method: POST, url: "{url}"}}
    heartbeat_timeout: 2s
    retry: {{max_attempts: 50, initial_interval: 200ms, max_interval: 2s}}
"""
        )
        waiting = [await start(stack, gated, "gate") for _ in range(scale.parked)]
        running = [await start(stack, busy, "busy") for _ in range(scale.parked)]
        for h in waiting:
            await gate_open(h, "work")
        # Half the gates are decided just before the server goes down; those decisions must
        # survive the restart, the other half are decided after it.
        before = waiting[: len(waiting) // 2]
        for i, h in enumerate(before):
            await h.execute_update(PipelineWorkflow.submit_decision, approve("work", f"pre-{i}"))
        stack.stop_server()
        await stack.start_server()
        assert stack.client is not None
        # Handles hold the old client; rebind them to the new connection.
        waiting = [stack.client.get_workflow_handle(h.id) for h in waiting]
        running = [stack.client.get_workflow_handle(h.id) for h in running]
        for i, h in enumerate(waiting[len(before) :]):
            await gate_open(h, "work")
            await h.execute_update(PipelineWorkflow.submit_decision, approve("work", f"post-{i}"))
        states = await asyncio.gather(*(outcome(h, 180) for h in waiting + running))
        lost = 0
        for i, h in enumerate(waiting[: len(before)]):
            audit = (await h.query(PipelineWorkflow.status)).audit
            lost += not any(a.actor == f"pre-{i}" and a.outcome == "accepted" for a in audit)
        failures = await task_failures(waiting + running)
    return {
        "waiting_at_gate": len(waiting),
        "mid_step": len(running),
        "completed": states.count("completed"),
        "decisions_lost": lost,
        **ledger.check({f"{h.id}/call" for h in running}),
        "workflow_task_failures": failures,
        "ok": states.count("completed") == len(states) and lost == 0,
    }


# ---- drill 3: restart the API under a live /events client -------------------------------------


async def drill_api_restart(stack: DrillStack) -> dict[str, Any]:
    url = await stack.start_api()
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    gated = snapshot(
        """
name: drill_sse
steps:
  - id: first
    tool: data.echo
    approval: {approvers: ["role:ops"]}
  - id: second
    needs: [first]
    tool: data.echo
    approval: {approvers: ["role:ops"]}
"""
    )
    handle = await start(stack, gated, "sse")
    seen: list[tuple[int, str]] = []
    last_id: str | None = None
    restarted = False
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while True:
            hdrs = {**headers, **({"Last-Event-ID": last_id} if last_id else {})}
            try:
                async with http.stream(
                    "GET", f"/workflows/{handle.id}/events", headers=hdrs
                ) as resp:
                    async for event_id, status in sse(resp):
                        last_id = event_id
                        seen.append((int(event_id), status["state"]))
                        gates = [g["gate"] for g in status["open_gates"]]
                        if "first" in gates and not restarted:
                            # Kill the API mid-stream, decide while it is down, bring it back.
                            stack.kill_api()
                            await handle.execute_update(
                                PipelineWorkflow.submit_decision, approve("first", "a")
                            )
                            await gate_open(handle, "second")
                            await stack.start_api()
                            restarted = True
                            break
                        if "second" in gates and restarted:
                            await http.post(
                                f"/workflows/{handle.id}/gates/second",
                                json={"action": "approve"},
                                headers=headers,
                            )
                    else:
                        break  # the server closed the stream: the run closed
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                await asyncio.sleep(0.2)  # the API is away; reconnect with Last-Event-ID
    revisions = [r for r, _ in seen]
    final = (await handle.query(PipelineWorkflow.status)).state
    stack.stop_api()
    return {
        "events": len(seen),
        "states_seen": sorted({s for _, s in seen}),
        "revisions_increasing": revisions == sorted(set(revisions)),
        "final_state": final,
        "ok": restarted
        and final == "completed"
        and revisions == sorted(set(revisions))
        and seen[-1][1] == "completed",
    }


async def sse(resp: httpx.Response) -> Any:
    """Yield (id, status) for each event of a status stream: the first event's status whole,
    each later one's patch applied to it."""
    event_id, kind, data, status = None, None, [], None
    async for line in resp.aiter_lines():
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            got = json.loads("\n".join(data))
            status = json_patch.apply(status, got) if kind == "patch" else got
            yield event_id, status
            event_id, kind, data = None, None, []


# ---- drill 4: a decision storm ----------------------------------------------------------------


async def drill_decision_storm(stack: DrillStack, scale: DrillScale) -> dict[str, Any]:
    quorum = scale.storm_valid_per_run
    inp = snapshot(
        f"""
name: drill_storm
steps:
  - id: vote
    tool: data.echo
    approval: {{approvers: ["role:ops"], quorum: {quorum}}}
"""
    )
    handles = [await start(stack, inp, "storm") for _ in range(scale.storm_runs)]
    for h in handles:
        await gate_open(h, "vote")
    jobs: list[tuple[Handle, Decision, bool]] = []
    for h in handles:
        for i in range(quorum):
            jobs.append((h, approve("vote", f"voter-{i}"), True))
        invalid = [
            Decision(gate="vote", action="approve", actor="intruder", roles=["dev"]),
            Decision(gate="nope", action="approve", actor="voter-x", roles=["ops"]),
            Decision(gate="vote", action="retry", actor="voter-y", roles=["ops"]),
            Decision(gate="vote", action="modify", actor="voter-z", roles=["ops"], patch=[1]),
            Decision(
                gate="vote", action="approve", actor="voter-q", roles=["ops"], digest="sha256:0"
            ),
        ]
        jobs += [(h, d, False) for d in invalid[:quorum]]
    random.shuffle(jobs)
    refused: dict[str, int] = {}
    accepted_invalid = lost_valid = 0
    started = time.perf_counter()

    async def send(h: Handle, d: Decision, valid: bool) -> None:
        nonlocal accepted_invalid, lost_valid
        try:
            await h.execute_update(PipelineWorkflow.submit_decision, d)
            accepted_invalid += not valid
        except WorkflowUpdateFailedError as err:
            kind = getattr(err.cause, "type", None) or "unknown"
            refused[kind] = refused.get(kind, 0) + 1
        except RPCError as err:
            # The run's last vote completes it within one workflow task (its step runs as a
            # local activity); a decision still waiting then, or arriving after, finds the run
            # closed. Only an invalid one can: the run cannot close before every valid vote is in.
            if not run_closed(err):
                raise
            if valid:
                lost_valid += 1
            else:
                refused["run_closed"] = refused.get("run_closed", 0) + 1

    await asyncio.gather(*(send(*job) for job in jobs))
    elapsed = time.perf_counter() - started
    states = await asyncio.gather(*(outcome(h, 120) for h in handles))
    exact = 0
    for h in handles:
        # Every vote is on the gates page (the status lists the latest ten).
        gates = (await h.query(PipelineWorkflow.page, PageInput(of="gates"))).gates
        voters = sorted(v.actor for v in gates[0].approvals) if gates else []
        exact += voters == sorted(f"voter-{i}" for i in range(quorum))
    failures = await task_failures(handles)
    valid = sum(1 for _, _, v in jobs if v)
    return {
        "decisions": len(jobs),
        "valid": valid,
        "refused": refused,
        "valid_lost": lost_valid,
        "seconds": round(elapsed, 2),
        "decisions_per_s": round(len(jobs) / elapsed, 1),
        "runs_with_exact_votes": exact,
        "completed": states.count("completed"),
        "workflow_task_failures": failures,
        "ok": exact == len(handles)
        and accepted_invalid == 0
        and lost_valid == 0
        and failures == 0
        and sum(refused.values()) == len(jobs) - valid,
    }


# ---- drill 5: a decision storm on one gate through the API ------------------------------------


async def drill_api_storm(stack: DrillStack) -> dict[str, Any]:
    voters = [f"voter-{i:02d}" for i in range(STORM_VOTERS)]
    outsiders = [f"outsider-{i}" for i in range(STORM_OUTSIDERS)]
    url = await stack.start_api(
        {**{p: ["voters"] for p in (*voters, *outsiders)}, "stranger": ["viewer"]}
    )
    inp = snapshot(yaml.safe_dump(storm.definition("voters", quorum=len(voters) + 10)))
    handle = await start(stack, inp, "api-storm")
    await gate_open(handle, storm.GATE)
    plan = storm.shots(handle.id, voters, outsiders, "stranger", invalid=STORM_INVALID)
    limits = httpx.Limits(max_connections=len(plan))
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        answers = await storm.fire([http], plan, stack.keys)
    elapsed = time.perf_counter() - started
    page = PageInput(of="gates", state="open")
    (gate,) = (await handle.query(PipelineWorkflow.page, page)).gates
    result = storm.tally(answers, [v.actor for v in gate.approvals], voters)
    stack.stop_api()
    failures = await task_failures([handle])
    return {
        **result,
        "seconds": round(elapsed, 2),
        "workflow_task_failures": failures,
        "ok": result["ok"] and failures == 0,
    }


def approve(gate: str, actor: str) -> Decision:
    return Decision(gate=gate, action="approve", actor=actor, roles=["ops"])


async def gate_open(handle: Handle, gate: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = await handle.query(PipelineWorkflow.status)
            if any(g.gate == gate for g in status.open_gates):
                return
        except Exception:  # the query fails while no worker has the run yet; keep polling
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"gate {gate!r} of {handle.id} did not open in {timeout_s}s")


async def run_drills(scale: DrillScale, workdir: Path) -> dict[str, Any]:
    with Processes(workdir) as procs:
        stack = DrillStack(procs, workdir, free_port())
        (workdir / "definitions").mkdir(exist_ok=True)
        await stack.start_server()
        results: dict[str, Any] = {"scale": scale.name}
        results["worker_kills"] = await drill_worker_kills(stack, scale)
        results["server_restart"] = await drill_server_restart(stack, scale)
        results["api_restart"] = await drill_api_restart(stack)
        results["decision_storm"] = await drill_decision_storm(stack, scale)
        results["api_decision_storm"] = await drill_api_storm(stack)
        results["bounds"] = await drill_bounds(stack, scale.bound_items)
        results["ok"] = all(v["ok"] for k, v in results.items() if isinstance(v, dict))
        return results


def main() -> int:
    target = os.environ.get("DRILL_TARGET", "dev")
    if target == "cluster":
        from bench.drill_cluster import main as cluster_main

        return cluster_main()
    if target != "dev":
        print(f"drill: DRILL_TARGET={target!r}: expected dev or cluster", file=sys.stderr)
        return 2
    scale = SCALES[os.environ.get("DRILL_SCALE", "full")]
    with tempfile.TemporaryDirectory(prefix="stepgate-drill-") as tmp:
        results = asyncio.run(run_drills(scale, Path(tmp)))
    print(json.dumps(results, indent=2))
    print(
        "drill:",
        "every run completed, no duplicate side effect, no decision lost"
        if results["ok"]
        else "FAILED",
    )
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
