"""/events streams: what they cost the API, the worker and the Temporal server.

Two measurements. `approvals` (what `python -m bench.sse` runs): one run waits at 1,000 item
gates; a batch of 100 approvals goes through POST /approvals/batch, once with nobody watching
and once while one viewer holds 16 streams on the run, alternately for `--rounds` rounds on
fresh runs; it prints the batch's seconds both ways and their ratio, the bytes the streams
received during the batch (and in all, their first statuses included) and the CPU each process
spent. `idle` (`--section idle`, and `make bench`'s `sse` section): runs wait at their gates; the
CPU each process uses per second is measured first with nothing watching them, then with N live
streams open on them (by default 40, one per run, all from one key, as a dashboard would).
`--tree DIR` runs the worker and API from DIR (an export of another revision, to compare before
and after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.pipelines import (
    BENCH_ROLE,
    RUN_TIMEOUT,
    gate_open,
    linear,
    poll,
    start_pipeline,
    validated,
)
from bench.scale import Scale
from bench.stack import ROOT, Stack, cpu_seconds, open_stack, start_api, start_worker
from tests.support.procs import Processes
from workflows.language.definition import Definition
from workflows.models import PipelineInput, Principal
from workflows.pipeline import PipelineWorkflow

STREAMS = 40
WINDOW_S = {"quick": 5.0, "full": 10.0}
# The approvals section: a batch of APPROVALS at a run with ITEMS open gates, WATCHING streams.
ITEMS, APPROVALS, WATCHING, ROUNDS = 1_000, 100, 16, 3
# Review text of each gate; short, as in the report (1,000 gates made a 1.2 MB status).
REVIEW_CHARS = 20
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


def item_gates(items: int, review_chars: int) -> tuple[Definition, dict[str, Any]]:
    """One for_each step over `items` items, each waiting at a gate of its own."""
    review = "r" * max(0, review_chars - 12) + " item ${item}"
    raw = {
        "name": "bench-sse-gates",
        "input": {"type": "object", "properties": {"n": {"type": "array"}}},
        "steps": [
            {
                "id": "each",
                "for_each": "${input.n}",
                "tool": "data.echo",
                "with": {"value": "${item}"},
                "approval": {"approvers": [f"role:{BENCH_ROLE}"], "review": review},
            }
        ],
    }
    return validated(raw), {"n": list(range(items))}


async def park_gates(stack: Stack, http: httpx.AsyncClient, items: int, review: int) -> str:
    """A run waiting at `items` open gates (read as a viewer reads it)."""
    definition, value = item_gates(items, review)
    workflow_id = f"bench-sse-gates-{uuid.uuid4().hex[:8]}"
    inp = PipelineInput(
        definition=definition,
        input=value,
        requester=Principal(principal="bench-requester", roles=[BENCH_ROLE]),
    )
    await stack.client.start_workflow(
        PipelineWorkflow.run,
        inp,
        id=workflow_id,
        task_queue=stack.task_queue,
        execution_timeout=RUN_TIMEOUT,
    )

    async def parked() -> bool:
        r = await http.get(f"/workflows/{workflow_id}")
        status = r.json() if r.status_code == 200 else {}
        return bool(status.get("open_gates_total", len(status.get("open_gates", ()))) == items)

    await poll(parked, 0.2, GATE_TIMEOUT_S * 3)
    return workflow_id


@dataclass
class Streams:
    """Live streams on one run, each counting the bytes and events it received."""

    received: list[int]
    events: list[int]
    first: asyncio.Event


async def follow(http: httpx.AsyncClient, path: str, n: int, streams: Streams) -> None:
    """Stream `path`, counting what arrives, until cancelled."""
    async with http.stream("GET", path) as r:
        if r.status_code != 200:
            raise RuntimeError(f"stream refused: {r.status_code} {(await r.aread())[:200]!r}")
        async for chunk in r.aiter_raw():
            streams.received[n] += len(chunk)
            streams.events[n] += chunk.count(b"\n\n")
            if all(streams.events):
                streams.first.set()


async def one_batch(
    stack: Stack, items: int, approvals: int, streams: int, review: int
) -> dict[str, Any]:
    """Approve `approvals` of a parked run's gates in one batch, with `streams` streams of one
    viewer on the run (0: nobody watching); the batch's seconds, bytes and CPU."""
    assert stack.api_url and stack.api_key and stack.viewer_key, "the API is needed"
    approver = {"Authorization": f"Bearer {stack.api_key}"}
    viewer = {"Authorization": f"Bearer {stack.viewer_key}"}
    limits = httpx.Limits(max_connections=streams + 4)
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=120, headers=approver) as http,
        httpx.AsyncClient(
            base_url=stack.api_url, timeout=None, headers=viewer, limits=limits
        ) as watching,
    ):
        workflow_id = await park_gates(stack, watching, items, review)
        seen = Streams([0] * streams, [0] * streams, asyncio.Event())
        path = f"/workflows/{workflow_id}/events"
        tasks = [asyncio.create_task(follow(watching, path, n, seen)) for n in range(streams)]
        try:
            if streams:
                await asyncio.wait_for(seen.first.wait(), GATE_TIMEOUT_S)
            before_bytes = sum(seen.received)
            cpu = cpu_seconds(stack)
            started = time.perf_counter()
            body = {
                "items": [
                    {"workflow_id": workflow_id, "gate": f"each.{k}", "action": "approve"}
                    for k in range(approvals)
                ]
            }
            r = await http.post("/approvals/batch", json=body)
            seconds = time.perf_counter() - started
            used = cpu_seconds(stack)
            during = sum(seen.received) - before_bytes
            await asyncio.sleep(SETTLE_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        codes = [item["status_code"] for item in r.json()["results"]] if r.is_success else []
        if r.status_code != 200 or codes != [200] * approvals:
            raise RuntimeError(f"batch: {r.status_code}, items {sorted(set(codes))}")
        await stack.client.get_workflow_handle(workflow_id).terminate("bench sse section done")
    return {
        "seconds": round(seconds, 3),
        "bytes_during": during,
        "bytes_total": sum(seen.received),
        "events": sum(seen.events),
        "cpu_s": {k: round(used[k] - cpu.get(k, 0.0), 3) for k in ("api", "worker", "temporal")},
    }


async def approvals_with_streams(
    stack: Stack, items: int, approvals: int, streams: int, rounds: int, review: int
) -> dict[str, Any]:
    """Rounds of the batch without streams and with them, alternately; medians and their ratio."""
    alone: list[dict[str, Any]] = []
    watched: list[dict[str, Any]] = []
    for _ in range(rounds):
        alone.append(await one_batch(stack, items, approvals, 0, review))
        watched.append(await one_batch(stack, items, approvals, streams, review))

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in rows))

    ratio = median(watched, "seconds") / median(alone, "seconds")
    return {
        "sse_approvals": {
            "items": items,
            "approvals": approvals,
            "streams": streams,
            "review_chars": review,
            "seconds_alone": median(alone, "seconds"),
            "seconds_streams": median(watched, "seconds"),
            "ratio": round(ratio, 3),
            "mb_during": round(median(watched, "bytes_during") / 1e6, 3),
            "mb_total": round(median(watched, "bytes_total") / 1e6, 3),
            "rounds": {"alone": alone, "streams": watched},
        }
    }


async def measure(stack: Stack, scale: Scale) -> dict[str, Any]:
    window_s = WINDOW_S.get(scale.name, WINDOW_S["full"])
    return await idle_streams(stack, STREAMS, STREAMS, window_s)


async def alone(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tree = args.tree.resolve()
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, tree=tree)
        await asyncio.gather(start_worker(stack, "worker"), start_api(stack))
        if args.section == "idle":
            got = await idle_streams(stack, args.streams, args.runs, args.seconds)
        else:
            got = await approvals_with_streams(
                stack, args.items, args.approvals, args.streams, args.rounds, args.review_chars
            )
        return {"tree": str(tree), **got}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--section", choices=("approvals", "idle"), default="approvals")
    parser.add_argument("--tree", type=Path, default=ROOT, help="worker and API source tree")
    parser.add_argument("--streams", type=int, help="16 (approvals), 40 (idle)")
    parser.add_argument("--runs", type=int, default=STREAMS, help="idle: runs the streams watch")
    parser.add_argument("--seconds", type=float, default=WINDOW_S["full"], help="idle: window")
    parser.add_argument("--items", type=int, default=ITEMS, help="approvals: gates of the run")
    parser.add_argument("--approvals", type=int, default=APPROVALS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--review-chars", type=int, default=REVIEW_CHARS)
    args = parser.parse_args()
    if args.streams is None:
        args.streams = STREAMS if args.section == "idle" else WATCHING
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-sse-"))
    (workdir / "definitions").mkdir()
    try:
        result = asyncio.run(alone(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.section == "idle":
        added = result["sse_idle"]["cpu_per_s_added"]
        print(
            f"{args.streams} idle streams on {args.runs} runs add, in CPU seconds per second: "
            + ", ".join(f"{name} {value:+.3f}" for name, value in sorted(added.items()))
        )
        return 0
    got = result["sse_approvals"]
    print(
        f"{got['approvals']} approvals at a run with {got['items']} open gates: "
        f"{got['seconds_alone']:.2f} s alone, {got['seconds_streams']:.2f} s with "
        f"{got['streams']} streams of one viewer (ratio {got['ratio']:.2f}); the streams "
        f"received {got['mb_during']:.2f} MB during the batch, {got['mb_total']:.2f} MB in all "
        f"(medians of {args.rounds} rounds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
