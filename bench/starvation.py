"""`python -m bench.starvation`: an approver's decisions and status reads while a viewer and
clients without a key flood the API with 1 MiB bodies, against the same without the flood.

The attack (bench/flood.py, a process of its own) runs in a loop for the whole measurement: a
viewer's 8 connections POSTing 1 MiB of YAML to /definitions/validate and 16 connections without
a key POSTing 1 MiB of JSON to /workflows. It runs twice: with the viewer's body of the issue
that found the starvation (`flat`: one list of 520,000 values) and with the costliest body under
the document bounds (`bound`: 99,900 values as small mappings). Meanwhile one approver decides
gated runs through the API one at a time, every DECISION_INTERVAL_S, and reads a parked run's
status every STATUS_INTERVAL_S, both timed on the client side over keep-alive connections. The
baseline, the same measurement without the attack, runs first in the same run.

The section starts its own API (`python -m api`, the API's default limits) with two keys, the
approver's and the viewer's, on the stack's server and worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.cells import num, verdict
from bench.pipelines import BENCH_ROLE, GATED_STEP, gate_open, linear, start_many
from bench.scale import Scale, scale_from_env
from bench.stack import (
    APPROVER,
    APPROVER_ROLES,
    HOST,
    Stack,
    open_stack,
    spawn_api,
    start_worker,
)
from bench.stats import Summary
from bench.status import LeanHttp, timed_get
from tests.support.procs import Child, Processes, free_port

VIEWER = "bench-viewer"
SHAPES = ("flat", "bound")
DECISION_INTERVAL_S = 0.2
STATUS_INTERVAL_S = 0.1
# The attack runs this long before the clock starts, so every loop has sent by then.
ATTACK_WARMUP_S = 3.0
REQUEST_TIMEOUT_S = 120.0
APPROVE = json.dumps({"action": "approve", "comment": "bench"}).encode()
STATUS_ROLE = "bench-starvation-status"


async def start_own_api(stack: Stack) -> tuple[Child, str, str, str]:
    """An API with the approver's and a viewer's key and the default limits."""
    approver, viewer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    keys_file = stack.workdir / "starvation-keys.yaml"
    keys_file.write_text(
        yaml.safe_dump(
            [
                {"key": approver, "principal": APPROVER, "roles": APPROVER_ROLES},
                {"key": viewer, "principal": VIEWER, "roles": ["viewer"]},
            ]
        )
    )
    keys_file.chmod(0o600)
    port = free_port()
    env = {
        **stack.env,
        "STEPGATE_TASK_QUEUE": stack.task_queue,
        "STEPGATE_API_HOST": HOST,
        "STEPGATE_API_PORT": str(port),
        "STEPGATE_API_KEYS_FILE": str(keys_file),
    }
    child, url = await spawn_api(stack.procs, env, port, cwd=stack.tree, name="api-starvation")
    return child, url, approver, viewer


async def decide(http: LeanHttp, workflow_id: str, failures: list[str]) -> float | None:
    """Milliseconds until the approval is answered 200 (the gate took the vote)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            status, body = await http.send(
                "POST", f"/workflows/{workflow_id}/gates/{GATED_STEP}", APPROVE
            )
    except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as err:
        failures.append(f"{type(err).__name__}: {err}")
        return None
    if status != 200:
        failures.append(f"{status}: {body[:200].decode(errors='replace')}")
        return None
    return (time.perf_counter() - started) * 1000


async def phase(url: str, key: str, run_ids: list[str], parked: str) -> dict[str, Any]:
    """Decide every run of `run_ids` one at a time while reading `parked`'s status."""
    deciding, reading = LeanHttp(url, key), LeanHttp(url, key)
    decision_failures: list[str] = []
    status_failures: list[str] = []
    decisions: list[float] = []
    status: list[float] = []
    done = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            ms = await timed_get(reading, f"/workflows/{parked}", status_failures)
            if ms is not None:
                status.append(ms)
            await asyncio.sleep(STATUS_INTERVAL_S)

    await asyncio.gather(deciding.connect(), reading.connect())
    reading_task = asyncio.create_task(reader())
    try:
        for workflow_id in run_ids:
            ms = await decide(deciding, workflow_id, decision_failures)
            if ms is not None:
                decisions.append(ms)
            await asyncio.sleep(DECISION_INTERVAL_S)
    finally:
        done.set()
        await reading_task
        deciding.close()
        reading.close()
    return {
        "decision_ms": Summary.of(decisions).as_dict() if decisions else None,
        "status_ms": Summary.of(status).as_dict() if status else None,
        "failed": {"decisions": len(decision_failures), "status": len(status_failures)},
        "failures": (decision_failures + status_failures)[:5],
    }


def attack_counts(child: Child) -> dict[str, int]:
    """The flood's last report: its answers by loop kind and status."""
    lines = [line for line in child.tail(5).splitlines() if line.startswith("{")]
    return dict(json.loads(lines[-1])) if lines else {}


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    n = scale.starvation_decisions
    api, url, approver, viewer = await start_own_api(stack)
    tag = uuid.uuid4().hex[:6]
    gated = linear("bench-starvation", gate_role=BENCH_ROLE)
    ids = [f"{stack.task_queue}-starve-{tag}-{i}" for i in range(n * (1 + len(SHAPES)))]
    parked = f"{stack.task_queue}-starve-{tag}-parked"
    handles = await start_many(stack.client, stack.task_queue, gated, ids)
    (parked_handle,) = await start_many(
        stack.client, stack.task_queue, linear("bench-parked", gate_role=STATUS_ROLE), [parked]
    )
    results: dict[str, Any] = {}
    try:
        await asyncio.gather(
            *(gate_open(h, scale.section_timeout_s) for h in [*handles, parked_handle])
        )
        batches = [ids[i * n : (i + 1) * n] for i in range(1 + len(SHAPES))]
        cpu = api.cpu_seconds()
        results["baseline"] = await phase(url, approver, batches[0], parked)
        results["baseline"]["api_cpu_s"] = round(api.cpu_seconds() - cpu, 2)
        for shape, batch in zip(SHAPES, batches[1:], strict=True):
            argv = [sys.executable, "-m", "bench.flood", url, viewer, shape]
            flood = stack.procs.spawn(f"flood-{shape}", argv, stack.env, stack.tree)
            try:
                await asyncio.sleep(ATTACK_WARMUP_S)
                cpu, started = api.cpu_seconds(), time.perf_counter()
                results[shape] = await phase(url, approver, batch, parked)
                seconds = time.perf_counter() - started
                results[shape]["api_cpu_s"] = round(api.cpu_seconds() - cpu, 2)
                results[shape]["seconds"] = round(seconds, 1)
                results[shape]["attacker_cpu_s"] = round(flood.cpu_seconds(), 2)
            finally:
                stack.procs.stop(flood)
            results[shape]["attack_answers"] = attack_counts(flood)
    finally:
        await asyncio.gather(
            *(h.terminate("bench starvation section done") for h in [*handles, parked_handle]),
            return_exceptions=True,
        )
        stack.procs.stop(api)
    attacked = [results[s] for s in SHAPES]

    def worst(kind: str) -> float | None:
        figures = [r[kind]["p99"] for r in attacked if r[kind] is not None]
        return max(figures) if len(figures) == len(attacked) else None

    return {
        "starvation_decision_ms_p99": worst("decision_ms"),
        "starvation_status_ms_p99": worst("status_ms"),
        "starvation": results,
    }


def report_rows(r: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The bench table's rows: the approver's figures under the flood (the worse of its two
    bodies) against their targets, with the same figures without it."""
    got = r.get("starvation") or {}
    rows = []
    for kind, label, key in (
        ("decision_ms", "approver's decision", "starvation_decision_ms_p99"),
        ("status_ms", "approver's status read", "starvation_status_ms_p99"),
    ):
        base = (got.get("baseline") or {}).get(kind)
        attacked = [(got.get(s) or {}).get(kind) for s in SHAPES]
        worst = max((a for a in attacked if a), key=lambda a: a["p99"], default=None)
        shown = "-"
        if worst and base:
            shown = (
                f"{num(worst['p50'])} / {num(worst['p99'])} ms "
                f"(no flood: {num(base['p50'])} / {num(base['p99'])} ms)"
            )
        rows.append((f"{label} under the 1 MiB body flood p50 / p99", shown, *verdict(r, key)))
    return rows


async def run(scale: Scale) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-starvation-"))
    (workdir / "definitions").mkdir()
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir)
        await start_worker(stack, "worker-1")
        before = [round(x, 2) for x in os.getloadavg()]
        result = await measure(stack, scale)
    after = [round(x, 2) for x in os.getloadavg()]
    return (
        {"section": "starvation", "scale": scale.name, "logs": str(workdir)}
        | result
        | {"load_average": {"before": before, "after": after}}
    )


def main() -> int:
    print(json.dumps(asyncio.run(run(scale_from_env())), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
