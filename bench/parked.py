"""Runs parked at a gate: worker memory, inbox (visibility) latency, and approving them all.

Runs park in two steps, so one pass gives both figures: RSS with `cached_runs` parked and RSS
with `parked_runs` (10,000 at full scale). Then every run is approved through the API's batch
route, `APPROVE_BATCH` decisions a request and `APPROVE_REQUESTS` requests at once, as an
approver's tool clearing an inbox would; the worker's peak RSS is sampled throughout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
import psutil
from temporalio.client import WorkflowUpdateFailedError

from activities.config import Settings
from api.routes.approvals import BATCH_CONCURRENCY
from bench.baseline import APPROVE, AWAITING
from bench.pipelines import (
    BENCH_ROLE,
    GATED_STEP,
    RUN_TIMEOUT,
    START_CONCURRENCY,
    bounded_each,
    linear,
    start_many,
    wait_parked,
)
from bench.scale import Scale
from bench.stack import APPROVER, Stack, cpu_seconds
from bench.stats import Summary
from tests.support.procs import Child

PIPELINE = "bench-parked"
INBOX_QUERY = f"StepgateAwaiting = 'role:{BENCH_ROLE}'"
DONE_QUERY = f"StepgatePipeline = '{PIPELINE}' AND ExecutionStatus = 'Completed'"
# The most decisions one batch request may carry (api/schemas/approvals.py), and requests out
# at once: each applies its items 16 at a time, so two keep 32 decisions in flight, twice what a
# worker takes at once. Four kept 64, and at 15 approvals a second a batch then needed about as
# long as the API gives one (30 s): its last items answered 503.
APPROVE_BATCH = 100
APPROVE_REQUESTS = 2
FIRST_PAGE = 100
RSS_SAMPLE_S = 0.25


def rss_mb(child: Child) -> float:
    return round(psutil.Process(child.pid).memory_info().rss / 2**20, 1)


async def timed(samples: int, action: Callable[[], Awaitable[object]]) -> dict[str, float | int]:
    values = []
    for _ in range(samples):
        started = time.perf_counter()
        await action()
        values.append((time.perf_counter() - started) * 1000)
    return Summary.of(values).as_dict()


async def inbox_latency(stack: Stack, scale: Scale, parked: int) -> dict[str, Any]:
    client = stack.client

    async def count() -> None:
        found = (await client.count_workflows(INBOX_QUERY)).count
        if found != parked:
            raise RuntimeError(f"inbox count {found}, expected {parked}")

    async def first_page() -> None:
        async for _ in client.list_workflows(INBOX_QUERY, limit=FIRST_PAGE, page_size=FIRST_PAGE):
            pass

    async def everything() -> None:
        async for _ in client.list_workflows(INBOX_QUERY, page_size=1_000):
            pass

    out: dict[str, Any] = {
        "count_ms": await timed(scale.inbox_samples, count),
        "first_page_ms": await timed(scale.inbox_samples, first_page),
        "list_all_ms": await timed(1, everything),
    }
    if stack.api_url and stack.api_key:
        async with httpx.AsyncClient(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.api_key}"},
            timeout=60.0,
        ) as http:

            async def api_inbox() -> None:
                # One full page: the most runs a single inbox request reads.
                response = await http.get("/approvals", params={"page_size": 500})
                response.raise_for_status()

            out["api_approvals_ms"] = await timed(scale.inbox_samples, api_inbox)
    return out


class PeakRss:
    """The largest resident size a process reached while this runs, sampled every RSS_SAMPLE_S."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self.peak = child.rss_bytes()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.child.rss_bytes())
            await asyncio.sleep(RSS_SAMPLE_S)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.peak = max(self.peak, self.child.rss_bytes())

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)


async def approve_all(stack: Stack, ids: list[str]) -> dict[int, int]:
    """Approve every run's gate through POST /approvals/batch; the items' status codes counted."""
    if not (stack.api_url and stack.api_key):
        raise RuntimeError("the API is not running")
    codes: dict[int, int] = {}
    limit = asyncio.Semaphore(APPROVE_REQUESTS)
    async with httpx.AsyncClient(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {stack.api_key}"},
        timeout=120.0,
    ) as http:

        async def one(chunk: list[str]) -> None:
            items = [{"workflow_id": i, "gate": GATED_STEP, "action": "approve"} for i in chunk]
            async with limit:
                response = await http.post("/approvals/batch", json={"items": items})
            if response.status_code != 200:
                codes[response.status_code] = codes.get(response.status_code, 0) + len(chunk)
                return
            for result in response.json()["results"]:
                codes[result["status_code"]] = codes.get(result["status_code"], 0) + 1

        chunks = [ids[i : i + APPROVE_BATCH] for i in range(0, len(ids), APPROVE_BATCH)]
        await asyncio.gather(*(one(c) for c in chunks))
    return codes


BASELINE_INBOX = f"StepgateAwaiting = '{AWAITING}'"
BASELINE_DONE = "WorkflowType = 'GatedBaselineWorkflow' AND ExecutionStatus = 'Completed'"
# As many approvals in flight as the API's batch route keeps: APPROVE_REQUESTS batches, each
# applying BATCH_CONCURRENCY items at once.
BASELINE_IN_FLIGHT = APPROVE_REQUESTS * BATCH_CONCURRENCY


async def start_baselines(stack: Stack, ids: list[str]) -> None:
    async def one(workflow_id: str) -> None:
        await stack.client.start_workflow(
            "GatedBaselineWorkflow",
            {"value": workflow_id},
            id=workflow_id,
            task_queue=stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )

    await bounded_each(ids, one, START_CONCURRENCY)


async def approve_baselines(stack: Stack, ids: list[str]) -> dict[int, int]:
    """Each run's `approve` update, sent and awaited like the API's decisions (update completed);
    the outcomes counted as the API's would be (200 applied, 409 refused)."""
    codes: dict[int, int] = {}

    async def one(workflow_id: str) -> None:
        try:
            await stack.client.get_workflow_handle(workflow_id).execute_update(APPROVE, APPROVER)
        except WorkflowUpdateFailedError:
            codes[409] = codes.get(409, 0) + 1
        else:
            codes[200] = codes.get(200, 0) + 1

    await bounded_each(ids, one, BASELINE_IN_FLIGHT)
    return codes


async def measure(stack: Stack, scale: Scale, worker: Child) -> dict[str, Any]:
    definition = linear(PIPELINE, gate_role=BENCH_ROLE)
    tag = uuid.uuid4().hex[:6]
    ids = [f"{stack.task_queue}-parked-{tag}-{i}" for i in range(scale.parked_runs)]
    cached = min(scale.cached_runs, scale.parked_runs)
    out: dict[str, Any] = {"worker_rss_mb_idle": rss_mb(worker)}
    async with asyncio.timeout(scale.section_timeout_s), PeakRss(worker) as peak:
        started = time.perf_counter()
        await start_many(stack.client, stack.task_queue, definition, ids[:cached])
        await wait_parked(stack.client, INBOX_QUERY, cached, scale.section_timeout_s)
        out["worker_rss_mb_cached"] = rss_mb(worker)
        if scale.parked_runs > cached:
            await start_many(stack.client, stack.task_queue, definition, ids[cached:])
            await wait_parked(stack.client, INBOX_QUERY, len(ids), scale.section_timeout_s)
        out["park_s"] = round(time.perf_counter() - started, 2)
        out["worker_rss_mb_parked"] = rss_mb(worker)
        out["inbox"] = await inbox_latency(stack, scale, len(ids))
        cpu_before = cpu_seconds(stack)
        started = time.perf_counter()
        codes = await approve_all(stack, ids)
        out["approve_all_s"] = round(time.perf_counter() - started, 2)
        used = {k: v - cpu_before[k] for k, v in cpu_seconds(stack).items()}
        # Only the approved runs complete: waiting for all would wait out the section's timeout.
        await wait_parked(stack.client, DONE_QUERY, codes.get(200, 0), scale.section_timeout_s)
        out["approve_to_completed_s"] = round(time.perf_counter() - started, 2)
    if codes != {200: len(ids)}:
        raise RuntimeError(f"approving {len(ids)} runs answered {codes}")
    out.update(
        parked_runs=len(ids),
        cached_runs=cached,
        worker_max_cached_workflows=Settings().stepgate_max_cached_workflows,
        approvals_per_s=round(len(ids) / out["approve_all_s"], 1),
        approve_cpu_ms_per_run={k: round(v * 1000 / len(ids), 2) for k, v in used.items()},
        worker_rss_mb_peak=peak.mb,
    )
    # The same number of hand-written gated runs, parked and approved on the same stack after
    # Stepgate's (so the worker's memory figures above are Stepgate's alone; the store has grown
    # by Stepgate's runs by then, which can only slow the baseline). `python -m bench.approvals
    # --baseline` runs it first instead.
    out["baseline"] = await baseline_approvals(stack, len(ids), scale.section_timeout_s)
    out["approvals_vs_baseline"] = round(
        out["approvals_per_s"] / out["baseline"]["approvals_per_s"], 3
    )
    return {
        "worker_rss_mb_cached": out["worker_rss_mb_cached"],
        "worker_rss_mb_parked": out["worker_rss_mb_parked"],
        "worker_rss_mb_peak": peak.mb,
        "approve_all_s": out["approve_all_s"],
        "parked": out,
    }


Kind = Literal["stepgate", "baseline"]
# What a parked run of each kind is listed by, and what a finished one is.
PARKED_QUERIES: dict[Kind, str] = {"stepgate": INBOX_QUERY, "baseline": BASELINE_INBOX}
DONE_QUERIES: dict[Kind, str] = {"stepgate": DONE_QUERY, "baseline": BASELINE_DONE}


async def park(stack: Stack, kind: Kind, ids: list[str], timeout_s: float) -> None:
    """Start a run of `kind` under each id and wait until visibility lists them all parked."""
    if kind == "baseline":
        await start_baselines(stack, ids)
    else:
        await start_many(
            stack.client, stack.task_queue, linear(PIPELINE, gate_role=BENCH_ROLE), ids
        )
    await wait_parked(stack.client, PARKED_QUERIES[kind], len(ids), timeout_s)


async def approve(stack: Stack, kind: Kind, ids: list[str]) -> dict[int, int]:
    """Approve every run: Stepgate's through the API's batch route, the baseline's directly."""
    return await (approve_baselines(stack, ids) if kind == "baseline" else approve_all(stack, ids))


async def baseline_approvals(stack: Stack, runs: int, timeout_s: float) -> dict[str, Any]:
    """Park `runs` GatedBaselineWorkflow runs, approve them all, and say what that took."""
    ids = [f"{stack.task_queue}-baseline-{uuid.uuid4().hex[:6]}-{i}" for i in range(runs)]
    async with asyncio.timeout(timeout_s):
        await park(stack, "baseline", ids, timeout_s)
        before = cpu_seconds(stack)
        started = time.perf_counter()
        codes = await approve(stack, "baseline", ids)
        seconds = time.perf_counter() - started
        used = {k: v - before[k] for k, v in cpu_seconds(stack).items()}
        await wait_parked(stack.client, BASELINE_DONE, codes.get(200, 0), timeout_s)
    if codes != {200: runs}:
        raise RuntimeError(f"approving {runs} baseline runs answered {codes}")
    return {
        "approve_all_s": round(seconds, 2),
        "approvals_per_s": round(runs / seconds, 1),
        "approve_cpu_ms_per_run": {k: round(v * 1000 / runs, 2) for k, v in used.items()},
    }
