"""Governed runs: how long the cycle's own hand-offs take, read from history and audit times.

Each run is started through `POST /governed` with a given plan whose first step (artifact.write,
medium risk) makes it tier 2 under a bench policy whose reviewers are the bench's own principal.
Runs go one at a time, so no measurement overlaps another:

- plan ready → gate open: the ActivityTaskCompleted event of the plan check, to the
  UpsertWorkflowSearchAttributes event that names the review's approvers (the gate is in the
  inbox from then on);
- approval → child's first step started: the audit entry of the approval (`workflow.now()` of
  the task that took it) to the ActivityTaskStarted event of the child PipelineWorkflow's first
  tool call;
- `GET /workflows/{id}` of a governed run, timed by the client over one keep-alive connection.

`python -m bench.governed` starts its own dev server, worker and API; `python -m bench` runs it
as the `governed` section.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.scale import Scale, scale_from_env
from bench.stack import APPROVER_ROLES, Stack, open_stack, start_api, start_worker
from bench.stats import Summary
from bench.status import LeanHttp, timed_get
from tests.support.procs import Processes
from workflows.contract import SA_AWAITING

POLICY = "bench-governed"
MIN_RUNS = 50
STATUS_REQUESTS = 200
RUN_LIMIT_S = 30.0
PLAN = {
    "name": "bench_governed",
    "steps": [
        {
            "id": "write",
            "tool": "artifact.write",
            "with": {"name": "note.txt", "content": "hello", "overwrite": True},
        }
    ],
}


def write_policy(definitions: Path) -> None:
    """Tier 2 for a medium-risk step, reviewed by a role the bench's key holds."""
    folder = definitions / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    policy = {
        "name": POLICY,
        "allowed_tools": ["artifact.write"],
        "tier2": {"approvers": [f"role:{APPROVER_ROLES[0]}"], "forbid_self_approval": False},
    }
    (folder / f"{POLICY}.yaml").write_text(yaml.safe_dump(policy))


async def events(client: Client, workflow_id: str) -> list[Any]:
    return [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]


def gate_open_ms(history: list[Any]) -> float:
    """Plan check completed → the search attribute naming the review's approvers written."""
    checked_ns = None
    for e in history:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            checked_ns = e.event_time.ToNanoseconds()
        elif (
            checked_ns is not None
            and e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
            and SA_AWAITING.name
            in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        ):
            return float(e.event_time.ToNanoseconds() - checked_ns) / 1e6
    raise RuntimeError("no review gate opened after the plan check")


def first_step_started_ns(history: list[Any]) -> int:
    for e in history:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            return int(e.event_time.ToNanoseconds())
    raise RuntimeError("the child started no tool call")


async def one_run(http: httpx.AsyncClient, client: Client, tag: str, i: int) -> dict[str, float]:
    workflow_id = f"bench-gov-{tag}-{i}"
    r = await http.post(
        "/governed",
        json={
            "request": f"bench run {i}",
            "plan": PLAN,
            "policy": POLICY,
            "workflow_id": workflow_id,
        },
    )
    r.raise_for_status()
    async with asyncio.timeout(RUN_LIMIT_S):
        while True:  # polling only waits for the gate; no time is read from it
            status = (await http.get(f"/workflows/{workflow_id}")).json()
            if any(g["gate"] == "review" for g in status.get("open_gates", [])):
                break
            await asyncio.sleep(0.02)
        decided = await http.post(
            f"/workflows/{workflow_id}/gates/review", json={"action": "approve"}
        )
        decided.raise_for_status()
        await client.get_workflow_handle(workflow_id).result()
    audit = (await http.get(f"/workflows/{workflow_id}")).json()["audit"]
    approved = next(a for a in audit if a["kind"] == "decision" and a["action"] == "approve")
    approved_ns = int(_parse(approved["at"]) * 1e9)
    child = await events(client, f"{workflow_id}--execute")
    return {
        "plan_to_gate_ms": gate_open_ms(await events(client, workflow_id)),
        "approval_to_child_step_ms": (first_step_started_ns(child) - approved_ns) / 1e6,
    }


def _parse(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    if stack.api_url is None or stack.api_key is None:
        raise RuntimeError("the API is not running")
    write_policy(stack.workdir / "definitions")
    runs = max(MIN_RUNS, scale.decision_runs)
    tag = uuid.uuid4().hex[:6]
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    samples: list[dict[str, float]] = []
    deadline = time.monotonic() + scale.section_timeout_s
    async with httpx.AsyncClient(base_url=stack.api_url, headers=headers, timeout=30) as http:
        for i in range(runs):
            if time.monotonic() > deadline:
                break
            samples.append(await one_run(http, stack.client, tag, i))
    failures: list[str] = []
    conn = LeanHttp(stack.api_url, stack.api_key)
    path = f"/workflows/bench-gov-{tag}-0"
    try:
        for _ in range(10):  # warm-up: connection, caches
            await timed_get(conn, path, [])
        got = [await timed_get(conn, path, failures) for _ in range(STATUS_REQUESTS)]
    finally:
        conn.close()
    times = [t for t in got if t is not None]
    out: dict[str, Any] = {k: Summary.of([s[k] for s in samples]).as_dict() for k in samples[0]}
    out["status_ms"] = Summary.of(times).as_dict()
    out["status_failures"] = failures[:5]
    return {
        "governed_plan_to_gate_ms_p50": out["plan_to_gate_ms"]["p50"],
        "governed_plan_to_gate_ms_p99": out["plan_to_gate_ms"]["p99"],
        "governed_approval_to_child_step_ms_p50": out["approval_to_child_step_ms"]["p50"],
        "governed_approval_to_child_step_ms_p99": out["approval_to_child_step_ms"]["p99"],
        "governed_status_ms_p50": out["status_ms"]["p50"],
        "governed_status_ms_p99": out["status_ms"]["p99"],
        "governed": out,
    }


TARGET_P50_MS = 50.0


def report_rows(r: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The bench table's rows: each hand-off's p50 / p99 against its target, and status reads."""
    g = r.get("governed") or {}
    rows = []
    for key, label in (
        ("plan_to_gate_ms", "governed plan ready -> review gate open"),
        ("approval_to_child_step_ms", "governed approval -> child's first step started"),
    ):
        if key in g:
            s = g[key]
            rows.append(
                (
                    f"{label} ({s['n']} runs) p50 / p99",
                    f"{s['p50']:.1f} / {s['p99']:.1f} ms",
                    f"p50 <= {TARGET_P50_MS:g} ms",
                    "PASS" if s["p50"] <= TARGET_P50_MS else "MISS",
                )
            )
    if "status_ms" in g:
        s = g["status_ms"]
        rows.append(
            (
                f"GET /workflows/{{id}} of a governed run ({s['n']}) p50 / p99",
                f"{s['p50']:.1f} / {s['p99']:.1f} ms",
                "",
                "",
            )
        )
    return rows


async def _alone(procs: Processes, workdir: Path, scale: Scale) -> dict[str, Any]:
    stack = await open_stack(procs, workdir)
    await asyncio.gather(start_worker(stack, "worker-1"), start_api(stack))
    return await measure(stack, scale)


def main() -> int:
    """Measure governed runs on a private dev server with one worker and the API."""
    scale = scale_from_env()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-governed-"))
    (workdir / "definitions").mkdir()
    try:
        with Processes(workdir) as procs:
            results = asyncio.run(_alone(procs, workdir, scale))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    for row in report_rows(results):
        print("  ".join(cell for cell in row if cell))
    return 0


if __name__ == "__main__":
    sys.exit(main())
