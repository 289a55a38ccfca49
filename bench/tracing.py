"""`python -m bench.tracing`: what tracing costs a worker, the step overhead section run with
tracing off, on (OTLP to a collector stand-in on loopback that counts what it receives), and on
with the collector down (its port closed).

One dev server (history in memory); for each mode a fresh worker process on a fresh task queue,
configured through OTEL_* as an operator would, and the bench's own client traced the same way
(the API's role: a traced caller is what makes the workflow's spans). Modes go in rounds, so
drift in the machine's load hits each alike. Prints, per mode, the pipeline run's and the
per-step overhead's medians and the worker's CPU per run. BENCH_SCALE=quick (default here) or
full; `--pairs N` and `--rounds N` override.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.client import Client

from activities import tracing
from bench import overhead
from bench.scale import SCALES, Scale
from bench.stack import Stack, open_stack, start_worker, stop_worker
from tests.support.procs import Processes
from workflows.tracing import interceptors

MODES = ("off", "on", "dead")


class Sink:
    """An OTLP/HTTP collector stand-in: answers 200 and counts the spans it was sent."""

    def __init__(self) -> None:
        self.spans = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest.FromString(body)
                sink.spans += sum(
                    len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def otel_env(mode: str, sink: Sink) -> dict[str, str]:
    if mode == "off":
        return {}
    endpoint = sink.endpoint if mode == "on" else f"http://127.0.0.1:{closed_port()}"
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}


@contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def one(stack: Stack, scale: Scale, mode: str, sink: Sink, tag: str) -> dict[str, Any]:
    """The overhead section against a worker (and a client) traced as `mode` says."""
    env = otel_env(mode, sink)
    queue = f"{stack.task_queue}-{tag}"
    with environ(env):
        provider = tracing.configure("stepgate-bench", "0")
    config = stack.client.config()
    config["interceptors"] = interceptors(provider)
    client = Client(**config)
    run_stack = dataclasses.replace(
        stack, client=client, task_queue=queue, env={**stack.env, **env}, workers=[]
    )
    worker = await start_worker(run_stack, f"worker-{tag}")
    spans_before = sink.spans
    cpu_before = worker.cpu_seconds()
    try:
        out = await overhead.measure(run_stack, scale)
        cpu = worker.cpu_seconds() - cpu_before
    finally:
        await stop_worker(run_stack, worker)
        tracing.flush(2.0)
        tracing.use(None)
    runs = 2 * (len(out["overhead_pairs_ms"]) + len(out["overhead_regular"]["pairs_ms"]))
    runs += 4 * scale.warmup_pairs
    return {
        "mode": mode,
        "pipeline_run_ms_p50": out["pipeline_run_ms"]["p50"],
        "baseline_run_ms_p50": out["baseline_run_ms"]["p50"],
        "step_overhead_ms_p50": out["step_overhead_ms_p50"],
        "regular_pipeline_run_ms_p50": out["overhead_regular"]["pipeline_run_ms"]["p50"],
        "worker_cpu_ms_per_run": round(cpu * 1000 / runs, 2),
        "runs": runs,
        "spans_received": sink.spans - spans_before,
    }


async def run(workdir: Path, scale: Scale, rounds: int) -> list[dict[str, Any]]:
    sink = Sink()
    out: list[dict[str, Any]] = []
    try:
        with Processes(workdir) as procs:
            (workdir / "definitions").mkdir(parents=True, exist_ok=True)
            stack = await open_stack(procs, workdir, store="memory")
            for r in range(rounds):
                for mode in MODES:
                    print(f"[bench.tracing] round {r + 1}: {mode}", file=sys.stderr, flush=True)
                    out.append(await one(stack, scale, mode, sink, f"{mode}{r}"))
    finally:
        sink.stop()
    return out


def summary(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per mode, the median over rounds of each figure."""
    by: dict[str, dict[str, float]] = {}
    for mode in MODES:
        rows = [r for r in results if r["mode"] == mode]
        by[mode] = {
            key: sorted(r[key] for r in rows)[len(rows) // 2]
            for key in rows[0]
            if key not in ("mode", "runs")
        }
    return by


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scale = SCALES[os.environ.get("BENCH_SCALE", "quick").strip().lower() or "quick"]
    if args.pairs:
        scale = dataclasses.replace(scale, overhead_pairs=args.pairs)
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-tracing-"))
    load = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    try:
        results = asyncio.run(run(workdir, scale, args.rounds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "scale": scale.name,
        "overhead_pairs": scale.overhead_pairs,
        "rounds": args.rounds,
        "load_average_at_start": load,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - started, 1),
        "median_by_mode": summary(results),
        "runs": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
