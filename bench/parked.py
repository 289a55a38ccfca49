"""Runs parked at a gate: worker memory, inbox (visibility) latency, and approving them all.

Runs park in two steps, so one pass gives both figures: RSS with `cached_runs` parked (all of
them fit the worker's sticky cache) and RSS with `parked_runs` (10,000 at full scale, more than the
cache holds, so the worker evicts and replays on demand: memory stays bounded by the cache).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psutil

from activities.config import Settings
from bench.pipelines import (
    BENCH_ROLE,
    PipelineHandle,
    approval,
    bounded_each,
    linear,
    start_many,
    wait_parked,
)
from bench.procs import Child
from bench.scale import Scale
from bench.stack import Stack
from bench.stats import Summary
from workflows.pipeline import PipelineWorkflow

PIPELINE = "bench-parked"
INBOX_QUERY = f"StepgateAwaiting = 'role:{BENCH_ROLE}'"
DONE_QUERY = f"StepgatePipeline = '{PIPELINE}' AND ExecutionStatus = 'Completed'"
APPROVE_CONCURRENCY = 50
FIRST_PAGE = 100


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


async def measure(stack: Stack, scale: Scale, worker: Child) -> dict[str, Any]:
    definition = linear(PIPELINE, gate_role=BENCH_ROLE)
    tag = uuid.uuid4().hex[:6]
    ids = [f"{stack.task_queue}-parked-{tag}-{i}" for i in range(scale.parked_runs)]
    cached = min(scale.cached_runs, scale.parked_runs)
    out: dict[str, Any] = {"worker_rss_mb_idle": rss_mb(worker)}
    handles: list[PipelineHandle] = []
    async with asyncio.timeout(scale.section_timeout_s):
        started = time.perf_counter()
        handles += await start_many(stack.client, stack.task_queue, definition, ids[:cached])
        await wait_parked(stack.client, INBOX_QUERY, cached, scale.section_timeout_s)
        out["worker_rss_mb_cached"] = rss_mb(worker)
        if scale.parked_runs > cached:
            handles += await start_many(stack.client, stack.task_queue, definition, ids[cached:])
            await wait_parked(stack.client, INBOX_QUERY, len(ids), scale.section_timeout_s)
        out["park_s"] = round(time.perf_counter() - started, 2)
        out["worker_rss_mb_parked"] = rss_mb(worker)
        out["inbox"] = await inbox_latency(stack, scale, len(ids))

        async def approve(handle: PipelineHandle) -> None:
            await handle.execute_update(PipelineWorkflow.submit_decision, approval())

        started = time.perf_counter()
        await bounded_each(handles, approve, APPROVE_CONCURRENCY)
        out["approve_all_s"] = round(time.perf_counter() - started, 2)
        await wait_parked(stack.client, DONE_QUERY, len(ids), scale.section_timeout_s)
        out["approve_to_completed_s"] = round(time.perf_counter() - started, 2)
    out.update(
        parked_runs=len(ids),
        cached_runs=cached,
        worker_max_cached_workflows=Settings().stepgate_max_cached_workflows,
        approvals_per_s=round(len(ids) / out["approve_all_s"], 1),
    )
    return {
        "worker_rss_mb_cached": out["worker_rss_mb_cached"],
        "worker_rss_mb_parked": out["worker_rss_mb_parked"],
        "parked": out,
    }
