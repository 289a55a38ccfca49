"""Status latency: `GET /workflows/{id}` through the API (one `status` query each), idle and loaded.

Timed on the client side with httpx, so the figures include HTTP, auth, the Temporal query
round trip and the worker answering it. Under load the bench's own event loop shares the two
cores with the API, the worker and the server, which is part of what a user would see too.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from bench.pipelines import gate_open, linear, start_many
from bench.scale import Scale
from bench.stack import Stack, cpu_seconds
from bench.stats import Summary

# A role nobody else waits on, so these runs never show up in the bench's inbox figures.
STATUS_ROLE = "bench-status"
TARGET_RUNS = 10
REQUEST_TIMEOUT_S = 10.0
WARMUP_REQUESTS = 10


async def timed_get(http: httpx.AsyncClient, path: str, failures: list[str]) -> float | None:
    """Milliseconds for one 200 response; a timeout or error is recorded, not raised, so one
    slow request under load does not throw away the other samples."""
    started = time.perf_counter()
    try:
        response = await http.get(path)
    except httpx.HTTPError as err:
        failures.append(f"{type(err).__name__}: {err}")
        return None
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        failures.append(f"{response.status_code}: {response.text[:200]}")
        return None
    return elapsed


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    if stack.api_url is None or stack.api_key is None:
        raise RuntimeError("the API is not running")
    definition = linear("bench-status", gate_role=STATUS_ROLE)
    tag = uuid.uuid4().hex[:6]
    ids = [f"{stack.task_queue}-status-{tag}-{i}" for i in range(TARGET_RUNS)]
    handles = await start_many(stack.client, stack.task_queue, definition, ids)
    idle_failures: list[str] = []
    load_failures: list[str] = []
    try:
        await asyncio.gather(*(gate_open(h, scale.section_timeout_s) for h in handles))
        paths = [f"/workflows/{i}" for i in ids]
        clients = scale.status_load_clients
        async with httpx.AsyncClient(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.api_key}"},
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
        ) as http:
            async with asyncio.timeout(scale.section_timeout_s):
                for i in range(WARMUP_REQUESTS):
                    await timed_get(http, paths[i % len(paths)], [])
                idle = [
                    await timed_get(http, paths[i % len(paths)], idle_failures)
                    for i in range(scale.status_idle_requests)
                ]

                async def client(c: int) -> list[float | None]:
                    n = scale.status_load_requests_per_client
                    return [
                        await timed_get(http, paths[(c + i) % len(paths)], load_failures)
                        for i in range(n)
                    ]

                cpu_before = cpu_seconds(stack)
                started = time.perf_counter()
                per_client = await asyncio.gather(*(client(c) for c in range(clients)))
                load_s = time.perf_counter() - started
                cpu_after = cpu_seconds(stack)
    finally:
        # These runs exist only to be read; leave nothing parked for the later sections.
        await asyncio.gather(*(h.terminate("bench status section done") for h in handles))
    loaded = [ms for samples in per_client for ms in samples if ms is not None]
    idle_s = Summary.of([ms for ms in idle if ms is not None])
    load_sum = Summary.of(loaded)
    # CPU per request by process: which of API, worker, server (and this client) the cores went to.
    requests = len(loaded) + len(load_failures)
    cpu_ms = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / requests, 2) for k in cpu_after}
    return {
        "status_ms_p50_idle": round(idle_s.p50, 2),
        "status_ms_p99_idle": round(idle_s.p99, 2),
        "status_ms_p50_load": round(load_sum.p50, 2),
        "status_ms_p99_load": round(load_sum.p99, 2),
        "status_ms": {
            "idle": idle_s.as_dict(),
            "load": load_sum.as_dict(),
            "load_clients": clients,
            "load_requests_per_s": round(len(loaded) / load_s, 1),
            "load_cpu_ms_per_request": cpu_ms,
            "failures": {"idle": idle_failures[:5], "load": load_failures[:5]},
            "failed_requests": {"idle": len(idle_failures), "load": len(load_failures)},
        },
    }
