"""Status latency: `GET /workflows/{id}` through the API, idle and under 50 clients.

Timed on the client side over keep-alive connections, so the figures include HTTP, auth, the
Temporal query round trip and the worker answering it. Two loads: every client back to back (a
saturation test: each sends its next request the moment the last one returns) and every client
polling once per interval, as dashboards do. The load generator shares the two cores with the
API, the worker and the server, so it is kept lean (see LeanHttp).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from bench.pipelines import gate_open, linear, start_many
from bench.scale import Scale
from bench.stack import Stack, cpu_seconds
from bench.stats import Summary

# A role nobody else waits on, so these runs never show up in the bench's inbox figures.
STATUS_ROLE = "bench-status"
TARGET_RUNS = 10
REQUEST_TIMEOUT_S = 10.0
WARMUP_REQUESTS = 10
# The polling load: each client asks once per interval, as a dashboard refreshing a run would.
PACED_INTERVAL_S = 0.5
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


class LeanHttp:
    """One keep-alive HTTP/1.1 connection sending requests with a bearer key. httpx spends about
    5 ms of CPU per request, on the same two cores as the API, the worker and the server; this
    client spends a small fraction of that, so the loaded figures are the service's and not the
    load generator's. It reads what uvicorn sends: a status line, headers, a Content-Length body."""

    def __init__(self, url: str, key: str) -> None:
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.headers = f"Host: {parsed.netloc}\r\nAuthorization: Bearer {key}\r\n\r\n"
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def connect(self) -> None:
        if self.stream is None:
            self.stream = await asyncio.open_connection(self.host, self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.send("GET", path)

    async def send(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request (with a JSON body when given) and its answer."""
        await self.connect()
        assert self.stream is not None
        reader, writer = self.stream
        sized = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\n{sized}{self.headers}".encode() + (body or b"")
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = CONTENT_LENGTH.search(head)
            if length is None:
                raise ValueError(f"no Content-Length in {head[:200]!r}")
            body = await reader.readexactly(int(length.group(1)))
        except BaseException:
            self.close()  # a half-read response leaves the connection unusable
            raise
        return int(head[9:12]), body

    def close(self) -> None:
        if self.stream is not None:
            self.stream[1].close()
            self.stream = None


async def timed_get(http: LeanHttp, path: str, failures: list[str]) -> float | None:
    """Milliseconds for one 200 response; a timeout or error is recorded, not raised, so one
    slow request under load does not throw away the other samples."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            status, body = await http.get(path)
    except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as err:
        failures.append(f"{type(err).__name__}: {err}")
        return None
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        failures.append(f"{status}: {body[:200].decode(errors='replace')}")
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
    paced_failures: list[str] = []
    try:
        await asyncio.gather(*(gate_open(h, scale.section_timeout_s) for h in handles))
        paths = [f"/workflows/{i}" for i in ids]
        clients = scale.status_load_clients
        conns = [LeanHttp(stack.api_url, stack.api_key) for _ in range(clients)]
        try:
            async with asyncio.timeout(scale.section_timeout_s):
                # Connections are opened before any clock starts, as a pool would hold them.
                await asyncio.gather(*(conn.connect() for conn in conns))
                for i in range(WARMUP_REQUESTS):
                    await timed_get(conns[0], paths[i % len(paths)], [])
                idle = [
                    await timed_get(conns[0], paths[i % len(paths)], idle_failures)
                    for i in range(scale.status_idle_requests)
                ]
                n = scale.status_load_requests_per_client

                async def back_to_back(c: int) -> list[float | None]:
                    return [
                        await timed_get(conns[c], paths[(c + i) % len(paths)], load_failures)
                        for i in range(n)
                    ]

                cpu_before = cpu_seconds(stack)
                started = time.perf_counter()
                per_client = await asyncio.gather(*(back_to_back(c) for c in range(clients)))
                load_s = time.perf_counter() - started
                cpu_after = cpu_seconds(stack)

                async def polling(c: int) -> list[float | None]:
                    # Spread the clients over the interval, then one request per tick; a late
                    # response makes the next request go at once rather than skip a tick.
                    loop = asyncio.get_running_loop()
                    first = loop.time() + PACED_INTERVAL_S * c / clients
                    samples = []
                    for i in range(n):
                        await asyncio.sleep(max(0.0, first + i * PACED_INTERVAL_S - loop.time()))
                        path = paths[(c + i) % len(paths)]
                        samples.append(await timed_get(conns[c], path, paced_failures))
                    return samples

                started = time.perf_counter()
                per_client_paced = await asyncio.gather(*(polling(c) for c in range(clients)))
                paced_s = time.perf_counter() - started
        finally:
            for conn in conns:
                conn.close()
    finally:
        # These runs exist only to be read; leave nothing parked for the later sections.
        await asyncio.gather(*(h.terminate("bench status section done") for h in handles))
    loaded = [ms for samples in per_client for ms in samples if ms is not None]
    idle_s = Summary.of([ms for ms in idle if ms is not None])
    load_sum = Summary.of(loaded)
    paced = [ms for samples in per_client_paced for ms in samples if ms is not None]
    paced_sum = Summary.of(paced)
    # CPU per request by process: which of API, worker, server (and this client) the cores went to.
    requests = len(loaded) + len(load_failures)
    cpu_ms = {k: round((cpu_after[k] - cpu_before[k]) * 1000 / requests, 2) for k in cpu_after}
    return {
        "status_ms_p50_idle": round(idle_s.p50, 2),
        "status_ms_p99_idle": round(idle_s.p99, 2),
        "status_ms_p50_load": round(load_sum.p50, 2),
        "status_ms_p99_load": round(load_sum.p99, 2),
        "status_ms_p50_paced": round(paced_sum.p50, 2),
        "status_ms_p99_paced": round(paced_sum.p99, 2),
        "status_ms": {
            "idle": idle_s.as_dict(),
            "load": load_sum.as_dict(),
            "load_clients": clients,
            "load_requests_per_s": round(len(loaded) / load_s, 1),
            "load_cpu_ms_per_request": cpu_ms,
            "paced": paced_sum.as_dict(),
            "paced_interval_s": PACED_INTERVAL_S,
            "paced_requests_per_s": round(len(paced) / paced_s, 1),
            "failures": {
                "idle": idle_failures[:5],
                "load": load_failures[:5],
                "paced": paced_failures[:5],
            },
            "failed_requests": {
                "idle": len(idle_failures),
                "load": len(load_failures),
                "paced": len(paced_failures),
            },
        },
    }
