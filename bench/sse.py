"""Idle /events streams: what they cost the API, the worker and the Temporal server.

Runs wait at their gates; the CPU each process uses per second is measured first with nothing
watching them, then with N live streams open on them (by default 40, one per run, all from one
key, as a dashboard would), and both are reported. `make bench` runs it as its `sse` section; `python -m bench.sse --tree DIR`
runs it alone on a stack of its own whose worker and API come from DIR (an export of another
revision, to compare before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.pipelines import BENCH_ROLE, gate_open, linear, start_pipeline
from bench.scale import Scale
from bench.stack import ROOT, Stack, cpu_seconds, open_stack, start_api, start_worker
from tests.support.procs import Processes

STREAMS = 40
WINDOW_S = {"quick": 5.0, "full": 10.0}
# Streams opening cost something; the window starts once they have settled.
SETTLE_S = 2.0
GATE_TIMEOUT_S = 60.0


async def cpu_per_second(stack: Stack, window_s: float) -> dict[str, float]:
    """Each process's CPU seconds per wall second over the next `window_s`."""
    before = cpu_seconds(stack)
    await asyncio.sleep(window_s)
    after = cpu_seconds(stack)
    return {name: round((after[name] - before.get(name, 0.0)) / window_s, 3) for name in after}


async def idle_streams(stack: Stack, streams: int, runs: int, window_s: float) -> dict[str, Any]:
    """`streams` streams spread over `runs` runs parked at their gates."""
    assert stack.api_url and stack.api_key, "the API is needed"
    definition = linear("bench-sse", gate_role=BENCH_ROLE)
    handles = await asyncio.gather(
        *(
            start_pipeline(stack.client, stack.task_queue, definition, f"bench-sse-{i}")
            for i in range(runs)
        )
    )
    await asyncio.gather(*(gate_open(h, GATE_TIMEOUT_S) for h in handles))
    await asyncio.sleep(SETTLE_S)
    idle = await cpu_per_second(stack, window_s)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    limits = httpx.Limits(max_connections=streams)
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=60, limits=limits) as http,
        contextlib.AsyncExitStack() as held,
    ):
        for i in range(streams):
            path = f"/workflows/{handles[i % runs].id}/events"
            r = await held.enter_async_context(http.stream("GET", path, headers=headers))
            if r.status_code != 200:
                raise RuntimeError(f"stream refused: {r.status_code} {(await r.aread())[:200]!r}")
        await asyncio.sleep(SETTLE_S)
        watched = await cpu_per_second(stack, window_s)
    for h in handles:
        await h.terminate("bench sse section done")
    return {
        "sse_idle": {
            "streams": streams,
            "runs": runs,
            "window_s": window_s,
            "cpu_per_s_idle": idle,
            "cpu_per_s_streams": watched,
            "cpu_per_s_added": {k: round(watched[k] - idle.get(k, 0.0), 3) for k in watched},
        }
    }


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    window_s = WINDOW_S.get(scale.name, WINDOW_S["full"])
    return await idle_streams(stack, STREAMS, STREAMS, window_s)


async def alone(
    tree: Path, streams: int, runs: int, window_s: float, workdir: Path
) -> dict[str, Any]:
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, tree=tree)
        await asyncio.gather(start_worker(stack, "worker"), start_api(stack))
        return {"tree": str(tree), **await idle_streams(stack, streams, runs, window_s)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT, help="worker and API source tree")
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--runs", type=int, default=STREAMS, help="runs the streams watch")
    parser.add_argument("--seconds", type=float, default=WINDOW_S["full"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-sse-"))
    (workdir / "definitions").mkdir()
    try:
        result = asyncio.run(
            alone(args.tree.resolve(), args.streams, args.runs, args.seconds, workdir)
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    added = result["sse_idle"]["cpu_per_s_added"]
    print(
        f"{args.streams} idle streams on {args.runs} runs add, in CPU seconds per second: "
        + ", ".join(f"{name} {value:+.3f}" for name, value in sorted(added.items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
