"""The cluster drill (`DRILL_TARGET=cluster make drill`): the faults an operator meets, on the
production topology of `make cluster` (bench/cluster.py): PostgreSQL, the Temporal server 1.29.1
with advanced visibility on it, two `worker.py` processes of one build (made current at start,
as `make run` does), the API, and the memory of governed runs in a database of the same
PostgreSQL.

Runs execute, each charging the ledger (tests/support/ledger.py) under its idempotency key, held
mid-call when a fault comes; others are parked at a gate from the start and governed runs at their
plan review, decided through the API in slices before and after each fault. The faults:

1. one of the two workers is SIGKILLed: the other one finishes every run (then it is replaced);
2. the Temporal server is stopped and started on the same data: runs resume;
3. PostgreSQL is stopped and started: the server and the workers reconnect, runs resume, and the
   memory's rows are the same after as before;
4. a worker of a new build (another STEPGATE_BUILD_ID) is started beside the old build's and
   made current through the API (`stepgate versions set-current`, docs/versioning.md): new runs
   start on it, runs pinned to the old build finish on the old build's workers, which stop only
   once `GET /versions` (`stepgate versions`) counts no open run on that build.

Every run completes, every ledger key lands exactly once, every decision is counted once (one
decision entry in its gate's audit, and once in the workers' `stepgate_decisions_total`).
`DRILL_SCALE=quick` is the size tests/test_drill_cluster.py runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from activities.config_versioning import DEFAULT_DEPLOYMENT_NAME
from activities.memory.schema import patterns
from bench.cluster import Cluster, Ports
from bench.cluster_up import workers_polling
from bench.drill import (
    CHARGE_STEP,
    DrillStack,
    charge_pipeline,
    charge_step,
    start,
    task_failures,
)
from bench.stack import HOST
from tests.support import prom
from tests.support.ledger import Ledger, serve_ledger
from tests.support.procs import Child, Processes, free_port, wait_for
from tests.support.util import eventually
from workflows.builds import default_build_id
from workflows.metrics import DECISIONS

PHASES = ("worker SIGKILL", "Temporal restart", "PostgreSQL restart", "new build rollout")
POLICY = "drill-governed"
REVIEW = "review"  # a governed run's plan review gate
RUN_S = 240.0  # a run's longest wait for its gate, its call or its end, faults included
DRAINED_S = 60.0  # Temporal's drainage check runs every 5 s here (dynamic config below)
# As scripts/dev-server sets them: an old build's drainage is checked within seconds.
DYNAMIC_CONFIG = {
    "matching.wv.VersionDrainageStatusVisibilityGracePeriod": "5s",
    "matching.wv.VersionDrainageStatusRefreshInterval": "5s",
}


@dataclass(frozen=True)
class ClusterScale:
    name: str
    executing: int  # runs mid-call at each fault (and as many new runs on the new build)
    # At a gate from the start, decided in five slices: before each fault, and after the last.
    parked: int
    governed: int  # at their plan review from the start, decided in four groups


SCALES = {
    "quick": ClusterScale("quick", executing=3, parked=10, governed=4),
    "full": ClusterScale("full", executing=20, parked=50, governed=8),
}


@dataclass
class Run:
    id: str
    phase: int  # the phase whose row counts it (0-based)
    gate: str | None = None  # decided through the API in its phase
    governed: bool = False
    late: bool = False  # decided after its phase's fault (the last slice), not before
    new_build: bool = False  # started once the new build was current

    @property
    def key(self) -> str:
        """The ledger key of its charge (a governed run charges from its child pipeline)."""
        return f"{self.workflows[-1]}/{CHARGE_STEP}"

    @property
    def workflows(self) -> list[str]:
        """Its workflow ids: a governed run's plan runs as its child `<id>--execute`."""
        return [self.id, f"{self.id}--execute"] if self.governed else [self.id]


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    runs: int
    completed: int
    duplicates: int  # side effects under a key no call of these runs had
    missing: int  # keys of these runs with no side effect
    lost_decisions: int  # gates decided in the phase without exactly one decision in their audit
    seconds: float
    workers_alive: bool  # every worker that should run still ran after the fault


@dataclass
class ClusterDrillResult:
    scale: str
    old_build: str
    new_build: str
    phases: list[PhaseResult] = field(default_factory=list)
    runs: int = 0
    completed: int = 0
    ledger: dict[str, int] = field(default_factory=dict)  # Ledger.check over every run
    decisions_sent: int = 0
    gates_with_one_decision: int = 0  # in the audit, accepted
    decisions_metric: float = 0.0  # the workers' stepgate_decisions_total, summed
    governed_runs: int = 0
    memory_rows_before: int = 0  # the memory's rows before the PostgreSQL restart...
    memory_rows_kept: int = 0  # ...of which as many identical after it
    memory_rows_end: int = 0
    new_runs: int = 0
    new_runs_on_new_build: int = 0  # pinned to it, every task taken by its worker
    old_runs: int = 0
    old_runs_on_old_build: int = 0  # pinned to the old build, every task taken by its workers
    old_build_status: str = ""  # as GET /versions showed it when its workers stopped
    old_build_open_runs: int = -1
    made_current_s: float = 0.0  # from its worker polling to `set-current` accepted
    drained_s: float = 0.0  # from the old build's last run closed to it shown drained
    calls_on_killed_worker: int = 0  # in flight when it was SIGKILLed
    workflow_task_failures: int = 0
    setup_seconds: float = 0.0  # the cluster, two workers and the API started, every gate open
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.completed == self.runs
            and self.ledger.get("unexpected_side_effects") == 0
            and self.ledger.get("missing_side_effects") == 0
            and self.gates_with_one_decision == self.decisions_sent
            and self.decisions_metric == self.decisions_sent
            and self.memory_rows_kept == self.memory_rows_before > 0
            and self.memory_rows_end == self.governed_runs
            and self.new_runs_on_new_build == self.new_runs > 0
            and self.old_runs_on_old_build == self.old_runs
            and self.old_build_open_runs == 0
            and all(p.workers_alive for p in self.phases)
            and self.calls_on_killed_worker > 0
        )


@dataclass(kw_only=True)
class ClusterStack(DrillStack):
    """DrillStack's workers and API on the cluster; each worker serves its metrics."""

    cluster: Cluster
    started: list[Child] = field(default_factory=list)  # every worker, also those gone
    metrics: dict[str, str] = field(default_factory=dict)  # worker name -> host:port
    builds: dict[str, str] = field(default_factory=dict)  # worker name -> build id
    counted: dict[str, float] = field(default_factory=dict)  # worker name -> decisions, last read

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        # The memory on the cluster's PostgreSQL; the drill sends everything with one key.
        env.update(STEPGATE_DATABASE_URL=self.cluster.postgres_dsn, STEPGATE_RATE_PER_S="0")
        # Versioned workers of the default deployment, whatever the caller's environment says.
        env.update(
            STEPGATE_WORKER_VERSIONING="true", STEPGATE_DEPLOYMENT_NAME=DEFAULT_DEPLOYMENT_NAME
        )
        env.pop("STEPGATE_BUILD_ID", None)
        return env

    async def start_worker(self, extra_env: dict[str, str] | None = None) -> Child:
        """A worker serving metrics on a port of its own; returns once it polls."""
        extra = dict(extra_env or {})
        address = f"{HOST}:{free_port()}"
        child = await super().start_worker({**extra, "STEPGATE_WORKER_METRICS_ADDRESS": address})
        self.started.append(child)
        self.metrics[child.name] = address
        self.builds[child.name] = extra.get("STEPGATE_BUILD_ID") or default_build_id()
        await workers_polling(self.cluster, [child], self.task_queue)
        return child

    async def stop_worker(self, child: Child) -> None:
        """A graceful stop (SIGTERM: it finishes what it holds), its decisions read first."""
        await self.scrape(child)
        await asyncio.to_thread(self.procs.stop, child)
        self.workers.remove(child)

    async def scrape(self, child: Child) -> None:
        """The decisions this worker has counted (read before it stops or is killed)."""
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"http://{self.metrics[child.name]}/metrics")).text
        self.counted[child.name] = prom.value(
            prom.parse(text), DECISIONS, action="approve", outcome="accepted"
        )

    def identities(self, build: str) -> tuple[str, ...]:
        """How Temporal names the workers of `build` (`<pid>@<host>`), those gone included."""
        return tuple(f"{c.pid}@" for c in self.started if self.builds[c.name] == build)


class ClusterDrill:
    """The drill's state: the stack, the ledger, the API client and every run it started."""

    def __init__(
        self, stack: ClusterStack, scale: ClusterScale, ledger: Ledger, ledger_url: str
    ) -> None:
        self.stack, self.scale, self.ledger, self.url = stack, scale, ledger, ledger_url
        old = default_build_id()
        self.result = ClusterDrillResult(scale.name, old_build=old, new_build=f"{old}-rollout")
        self.runs: list[Run] = []
        self.lost: set[str] = set()  # runs whose gate's audit does not hold exactly one decision
        self.alive: list[bool] = []
        self.seconds: list[float] = []
        self.http: httpx.AsyncClient | None = None

    @property
    def api(self) -> httpx.AsyncClient:
        if self.http is None:
            raise RuntimeError("the API is not running")
        return self.http

    @property
    def api_process(self) -> Child:
        if self.stack.api is None:
            raise RuntimeError("the API is not running")
        return self.stack.api

    @property
    def client(self) -> Client:
        if self.stack.client is None:
            raise RuntimeError("the Temporal server is not running")
        return self.stack.client

    async def read(self, path: str, **params: int) -> Any:
        """GET `path` through the API, sent again after a 503 as its Retry-After asks (a query
        that no worker of the run's build answered in time, on a busy machine), until RUN_S."""
        deadline = time.monotonic() + RUN_S
        while True:
            r = await self.api.get(path, params=params)
            if r.status_code != 503 or time.monotonic() > deadline:
                if r.status_code != 200:
                    raise RuntimeError(f"GET {path}: {r.status_code} {r.text}")
                return r.json()
            await asyncio.sleep(float(r.headers.get("Retry-After", "1")))

    # ---- starting, deciding, waiting -----------------------------------------------------------

    async def executing(self, phase: int, *, new_build: bool = False) -> list[Run]:
        """`executing` new runs, each with its charge in flight (held by the ledger) on return."""
        inp = charge_pipeline(self.url)
        runs = [
            Run((await start(self.stack, inp, f"exec{phase}")).id, phase, new_build=new_build)
            for _ in range(self.scale.executing)
        ]
        self.runs += runs
        # By the run's prefix, not the key: a call whose key changed is in flight too (and the
        # duplicate it makes is counted at the end).
        prefixes = [f"{r.workflows[-1]}/" for r in runs]
        await eventually(
            lambda: all(
                any(k.startswith(p) for k in list(self.ledger.requests_by_key)) for p in prefixes
            ),
            within=RUN_S,
            interval=0.1,
            what="every charge in flight",
        )
        return runs

    async def park(self) -> None:
        """The parked runs (five slices: one decided before each fault, the last after the
        rollout) and the governed runs (four groups, one before each fault), each at its gate."""
        gated = charge_pipeline(self.url, gated=True)
        last = len(PHASES) - 1
        for i in range(self.scale.parked):
            handle = await start(self.stack, gated, "parked")
            part = slice_of(i, self.scale.parked, len(PHASES) + 1)
            self.runs.append(Run(handle.id, min(part, last), CHARGE_STEP, late=part > last))
        plan = {"name": "drill_governed", "steps": [charge_step(self.url)]}
        for i in range(self.scale.governed):
            workflow_id = f"governed-{uuid.uuid4().hex[:10]}"
            body = {"request": f"drill charge {i}", "plan": plan, "policy": POLICY}
            r = await self.api.post("/governed", json={**body, "workflow_id": workflow_id})
            r.raise_for_status()
            part = slice_of(i, self.scale.governed, len(PHASES))
            self.runs.append(Run(workflow_id, part, REVIEW, governed=True))
        for run in self.runs:  # one after the other: the first waits, the others are open then
            await self.gate_open(run)

    async def gate_open(self, run: Run) -> None:
        async def is_open() -> bool:
            r = await self.api.get(f"/workflows/{run.id}")
            return r.status_code == 200 and any(
                g["gate"] == run.gate for g in r.json().get("open_gates", [])
            )

        await wait_for(self.api_process, is_open, RUN_S, f"{run.id}'s gate open")

    async def decide(self, phase: int, *, late: bool = False) -> None:
        """Approve the gates of the phase's slice through the API, as an approver would: a 5xx is
        sent again, and a 409 then means the first one landed (the audit check tells)."""
        for run in self.runs:
            if run.gate is None or run.phase != phase or run.late != late:
                continue
            path = f"/workflows/{run.id}/gates/{run.gate}"
            for attempt in range(10):
                r = await self.api.post(path, json={"action": "approve"})
                if r.status_code == 200 or (attempt and r.status_code == 409):
                    break
                if r.status_code < 500:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text}")
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
            self.result.decisions_sent += 1

    async def finished(self, runs: list[Run]) -> None:
        """Until every one of these runs has closed, however it ended."""

        async def closed(run: Run) -> None:
            try:
                await asyncio.wait_for(self.client.get_workflow_handle(run.id).result(), RUN_S)
            except WorkflowFailureError:
                pass  # counted as not completed

        await asyncio.gather(*(closed(r) for r in runs))

    def of_phase(self, phase: int) -> list[Run]:
        return [r for r in self.runs if r.phase == phase]

    # ---- the faults -------------------------------------------------------------------------

    async def phase(self, number: int) -> None:
        """Charges in flight, the slice's gates decided, the fault, then the phase's runs done."""
        started = time.perf_counter()
        self.ledger.hold.clear()
        await self.executing(number)
        await self.decide(number)
        workers = list(self.stack.workers)
        if number == 0:
            victim = await self.busiest(workers)
            workers.remove(victim)
            await self.stack.scrape(victim)
            self.stack.kill_worker(victim)
        elif number == 1:
            await self.stack.cluster.restart_server()
            self.stack.client = self.stack.cluster.client
        else:
            before = await self.memory()
            await self.stack.cluster.restart_postgres()
            after = await self.memory()
            self.result.memory_rows_before = len(before)
            self.result.memory_rows_kept = sum(after.get(k) == v for k, v in before.items())
        self.ledger.hold.set()
        await self.finished(self.of_phase(number))
        self.alive.append(all(w.alive() for w in workers))
        self.seconds.append(time.perf_counter() - started)
        if number == 0:  # replaced, as an operator would, once the survivor did the work alone
            await self.stack.start_worker()

    async def busiest(self, workers: list[Child]) -> Child:
        """The worker running most of the calls now in flight (Temporal names the worker of
        each pending activity); their count goes into the results."""
        calls = dict.fromkeys((w.pid for w in workers), 0)
        for run in self.runs:
            described = await self.client.get_workflow_handle(run.id).describe()
            for activity in described.raw_description.pending_activities:
                pid = activity.last_worker_identity.partition("@")[0]
                if pid.isdigit() and int(pid) in calls:
                    calls[int(pid)] += 1
        victim = max(workers, key=lambda w: calls[w.pid])
        self.result.calls_on_killed_worker = calls[victim.pid]
        return victim

    async def rollout(self) -> None:
        """A worker of a new build made current while runs of the old one are open and mid-call;
        the old build's workers stop once it has no open run."""
        started = time.perf_counter()
        number = len(PHASES) - 1
        self.ledger.hold.clear()
        await self.executing(number)
        await self.decide(number)
        old_workers = list(self.stack.workers)
        new = self.result.new_build
        # As docs/versioning.md rolls out a build while another runs: its worker first, then
        # `stepgate versions set-current` (409 build_not_ready until Temporal has registered it).
        worker = await self.stack.start_worker(
            {"STEPGATE_BUILD_ID": new, "STEPGATE_SET_CURRENT_VERSION": "false"}
        )

        async def made_current() -> bool:
            r = await self.api.post("/versions/current", json={"build_id": new})
            if r.status_code not in (200, 409):
                raise RuntimeError(f"POST /versions/current: {r.status_code} {r.text}")
            return r.status_code == 200

        asked = time.perf_counter()
        await wait_for(worker, made_current, RUN_S, "its build made current")
        self.result.made_current_s = round(time.perf_counter() - asked, 1)
        await self.executing(number, new_build=True)
        self.ledger.hold.set()
        await self.decide(number, late=True)
        await self.finished(self.of_phase(number))
        done = time.perf_counter()
        await self.drained(self.result.old_build)
        self.result.drained_s = round(time.perf_counter() - done, 1)
        # The audit is read through a worker of the run's build: before the old ones stop.
        await self.audit()
        for old_worker in old_workers:
            await self.stack.stop_worker(old_worker)
        self.alive.append(all(w.alive() for w in self.stack.workers))
        self.seconds.append(time.perf_counter() - started)
        old = [r for r in self.runs if not r.new_build]
        fresh = [r for r in self.runs if r.new_build]
        self.result.old_runs, self.result.new_runs = len(old), len(fresh)
        self.result.old_runs_on_old_build = await self.on_build(old, self.result.old_build)
        self.result.new_runs_on_new_build = await self.on_build(fresh, new)

    async def drained(self, build: str) -> None:
        """Until `GET /versions` counts no open run on `build` and Temporal calls it drained (or
        DRAINED_S passed: what it showed last is reported)."""
        deadline = time.monotonic() + DRAINED_S
        while True:
            listed = await self.read("/versions")
            got = next(b for b in listed["builds"] if b["build_id"] == build)
            drained = got["open_runs"] == 0 and got["status"] == "drained"
            if drained or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        self.result.old_build_status = str(got["status"])
        self.result.old_build_open_runs = int(got["open_runs"])

    async def on_build(self, runs: list[Run], build: str) -> int:
        """How many of these runs (a governed one with its child) are pinned to `build` and had
        every workflow and activity task taken by a worker of that build."""
        ours = self.stack.identities(build)
        count = 0
        for run in runs:
            good = True
            for workflow_id in run.workflows:
                handle = self.client.get_workflow_handle(workflow_id)
                info = (await handle.describe()).raw_description.workflow_execution_info
                good &= info.versioning_info.deployment_version.build_id == build
                async for event in handle.fetch_history_events():
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                        good &= event.workflow_task_started_event_attributes.identity.startswith(
                            ours
                        )
                    elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                        good &= event.activity_task_started_event_attributes.identity.startswith(
                            ours
                        )
            count += good
        return count

    # ---- what is checked --------------------------------------------------------------------

    async def memory(self) -> dict[str, str]:
        """The memory's rows (workflow id -> the pattern as stored), read from PostgreSQL."""
        conn = await asyncpg.connect(self.stack.cluster.postgres_dsn)
        try:
            rows = await conn.fetch(f"SELECT workflow_id, body FROM {patterns.name}")
        finally:
            await conn.close()
        return {row["workflow_id"]: row["body"] for row in rows}

    async def audit(self) -> None:
        """Each decided gate holds exactly one decision in its run's audit, accepted."""
        for run in self.runs:
            if run.gate is None:
                continue
            audit = await self.read(f"/workflows/{run.id}/audit", limit=500)
            entries = [
                e for e in audit["entries"] if e["kind"] == "decision" and e.get("gate") == run.gate
            ]
            if len(entries) == 1 and entries[0]["outcome"] == "accepted":
                self.result.gates_with_one_decision += 1
            else:
                self.lost.add(run.id)

    async def finish(self) -> ClusterDrillResult:
        """The results, once every phase is over."""
        result = self.result
        for worker in self.stack.workers:
            await self.stack.scrape(worker)
        result.decisions_metric = sum(self.stack.counted.values())
        completed: set[str] = set()
        for run in self.runs:
            handle = self.client.get_workflow_handle(run.id)
            if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
                completed.add(run.id)
        result.workflow_task_failures = await task_failures(
            [self.client.get_workflow_handle(w) for r in self.runs for w in r.workflows]
        )
        result.runs, result.completed = len(self.runs), len(completed)
        result.governed_runs = sum(r.governed for r in self.runs)
        result.ledger = self.ledger.check({r.key for r in self.runs})
        result.memory_rows_end = len(await self.memory())
        for number, name in enumerate(PHASES):
            runs = self.of_phase(number)
            keys = {r.key for r in runs}
            prefixes = tuple(f"{r.workflows[-1]}/" for r in runs)
            applied = {k for k in self.ledger.applied if k.startswith(prefixes)}
            result.phases.append(
                PhaseResult(
                    phase=name,
                    runs=len(runs),
                    completed=sum(r.id in completed for r in runs),
                    duplicates=len(applied - keys),
                    missing=len(keys - applied),
                    lost_decisions=sum(r.id in self.lost for r in runs),
                    seconds=round(self.seconds[number], 1),
                    workers_alive=self.alive[number],
                )
            )
        return result


def slice_of(i: int, total: int, slices: int) -> int:
    """Which of `slices` near-equal consecutive slices item `i` of `total` falls in."""
    return i * slices // max(total, 1)


def write_policy(definitions: Path) -> None:
    """A governed run whose plan charges the ledger is tier 2, reviewed by the drill's role."""
    folder = definitions / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    policy = {
        "name": POLICY,
        "allowed_tools": ["http.request"],
        "tier2": {"approvers": ["role:ops"], "forbid_self_approval": False},
    }
    (folder / f"{POLICY}.yaml").write_text(yaml.safe_dump(policy))


async def run_cluster_drill(scale: ClusterScale, workdir: Path) -> ClusterDrillResult:
    """The whole drill in `workdir`, which PostgreSQL's user must be able to reach."""
    started = time.perf_counter()
    with Processes(workdir) as procs:
        ports = Ports.free()
        cluster = Cluster(workdir / "cluster", ports, procs=procs, dynamic_config=DYNAMIC_CONFIG)
        async with cluster:
            stack = ClusterStack(procs, workdir, ports.temporal, cluster=cluster)
            stack.client = cluster.client
            write_policy(workdir / "definitions")
            ledger = Ledger(delay_s=0.2)
            try:
                with serve_ledger(ledger) as ledger_url:
                    *_, url = await asyncio.gather(
                        stack.start_worker(), stack.start_worker(), stack.start_api()
                    )
                    headers = {"Authorization": f"Bearer {stack.api_key}"}
                    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
                        drill = ClusterDrill(stack, scale, ledger, ledger_url)
                        drill.http = http
                        await drill.park()
                        drill.result.setup_seconds = round(time.perf_counter() - started, 1)
                        for number in range(len(PHASES) - 1):
                            await drill.phase(number)
                        await drill.rollout()
                        result = await drill.finish()
            finally:
                # Before the cluster stops: a worker or API left without a server would wait.
                stack.stop_api()
                for worker in list(stack.workers):
                    await asyncio.to_thread(procs.stop, worker)
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def table(result: ClusterDrillResult) -> str:
    """The phases' rows and their sum, aligned."""
    head = ("phase", "runs", "completed", "duplicates", "lost decisions", "seconds")
    rows = [
        (p.phase, p.runs, p.completed, p.duplicates, p.lost_decisions, p.seconds)
        for p in result.phases
    ]
    lost = result.decisions_sent - result.gates_with_one_decision
    duplicates = result.ledger.get("unexpected_side_effects", 0)
    rows.append(("all", result.runs, result.completed, duplicates, lost, result.seconds))
    cells = [[str(c) for c in row] for row in [head, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
            ]
        )
        for row in cells
    )


def report(result: ClusterDrillResult) -> str:
    ledger = result.ledger
    return "\n".join(
        [
            table(result),
            "",
            f"ledger: {ledger['side_effects']} side effects for {ledger['requests']} calls"
            f" ({ledger['calls_retried']} retried), {ledger['unexpected_side_effects']}"
            f" duplicates, {ledger['missing_side_effects']} missing",
            f"decisions: {result.decisions_sent} through the API, {result.gates_with_one_decision}"
            f" gates with exactly one decision in their audit; the workers' {DECISIONS} counted"
            f" {result.decisions_metric:g} of them (pipeline gates and governed reviews)",
            f"memory: {result.memory_rows_before} rows before the PostgreSQL restart,"
            f" {result.memory_rows_kept} identical after it, {result.memory_rows_end} at the end"
            f" ({result.governed_runs} governed runs)",
            f"rollout: {result.new_runs_on_new_build}/{result.new_runs} new runs pinned to"
            f" {result.new_build} and run by its worker; {result.old_runs_on_old_build}/"
            f"{result.old_runs} older runs pinned to {result.old_build} and run by its workers,"
            f" stopped at {result.old_build_status} with {result.old_build_open_runs} open runs"
            f" (the new build current {result.made_current_s} s after its worker polled, the old"
            f" one {result.old_build_status} {result.drained_s} s after its last run closed)",
            f"killed worker: {result.calls_on_killed_worker} calls in flight; workers alive"
            f" after each fault: {[p.workers_alive for p in result.phases]};"
            f" workflow task failures: {result.workflow_task_failures}",
        ]
    )


def main() -> int:
    scale = SCALES[os.environ.get("DRILL_SCALE", "full")]
    with tempfile.TemporaryDirectory(prefix="stepgate-drill-cluster-") as tmp:
        # As root PostgreSQL runs as `postgres`, which must reach its folder in here.
        Path(tmp).chmod(0o755)
        result = asyncio.run(run_cluster_drill(scale, Path(tmp)))
    print(report(result))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"scale {result.scale}: set up in {result.setup_seconds} s, load average {load}")
    print(
        "cluster drill:",
        "every run completed, no duplicate side effect, every decision counted once"
        if result.ok
        else "FAILED",
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
