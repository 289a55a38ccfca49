"""`python -m bench`: Stepgate against a hand-written baseline, measured twice in one run.

The headline column runs on scripts/dev-server with history in its SQLite file, as `make run`
does; the second column runs the same sections with history in memory (Stepgate without the
disk). Each column has its own server, worker and API, stopped before the next one starts.
The memory section needs no Temporal and runs once, after both columns.
BENCH_SCALE=quick (about three minutes) or full (default; about an hour). Every child process
is stopped on exit, on error and on Ctrl-C or SIGTERM (the first one; a second waits for the
stopping to end), which exit 130 or 143; logs stay in the printed folder when something failed.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import temporalio

from bench import (
    decision,
    dynamic,
    memory,
    overhead,
    parked,
    report,
    sse,
    starvation,
    status,
    throughput,
)
from bench import governed as governed_bench
from bench.scale import Scale, scale_from_env
from bench.stack import (
    STORES,
    Store,
    open_stack,
    server_argv,
    start_api,
    start_worker,
    stop_worker,
)
from tests.support.procs import Processes, StartupFailed

Section = Callable[[], Awaitable[dict[str, Any]]]
T = TypeVar("T")


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "platform": platform.platform(),
        # Other work on the machine shows in every figure: say how busy it was when we began.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def section(results: dict[str, Any], name: str, run: Section) -> None:
    """Run one measurement; a failure is reported and the remaining sections still run."""
    started = time.perf_counter()
    print(f"[bench] {results['store']}: {name} ...", file=sys.stderr, flush=True)
    try:
        results.update(await run())
    except Exception as err:
        results["errors"][name] = f"{type(err).__name__}: {err}"
    results["section_s"][name] = round(time.perf_counter() - started, 2)


def api_missing() -> str | None:
    """Why the status section cannot run, decided before any process starts."""
    if not (Path(__file__).resolve().parent.parent / "api" / "app.py").exists():
        return "api/app.py does not exist yet"
    return None


async def column(
    workdir: Path, scale: Scale, store: Store, api_error: str | None
) -> dict[str, Any]:
    """Every section against one dev server (its own worker and API too); all of them are
    stopped before this returns, so the next column has the machine to itself."""
    results: dict[str, Any] = {"store": store, "errors": {}, "skipped": {}, "section_s": {}}
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, store=store)
        results["server_argv"] = server_argv(stack.server)

        async def api() -> None:
            nonlocal api_error
            if api_error:
                return
            try:
                await start_api(stack)
            except StartupFailed as err:
                api_error = f"the API did not start: {err}"

        # Both start-ups are mostly imports; overlapping them saves a few seconds.
        worker, _ = await asyncio.gather(start_worker(stack, "worker-1"), api())

        # Parked first, on a fresh worker, so its RSS figures are not inflated by earlier sections.
        await section(results, "parked", lambda: parked.measure(stack, scale, worker))
        await section(results, "overhead", lambda: overhead.measure(stack, scale))
        await section(results, "decision", lambda: decision.measure(stack, scale))
        if api_error:
            results["skipped"]["status"] = api_error
        else:
            await section(results, "status", lambda: status.measure(stack, scale))
            await section(results, "sse", lambda: sse.measure(stack, scale))
            await section(results, "governed", lambda: governed_bench.measure(stack, scale))
            # With an API of its own (a viewer's key, the default limits), stopped at its end.
            await section(results, "starvation", lambda: starvation.measure(stack, scale))

        async def throughput_1() -> dict[str, Any]:
            out = await throughput.measure(stack, scale, "1", first="pipeline")
            return {
                "throughput_1_worker": out["per_second"],
                "throughput_1_ratio": out["ratio"],
                "throughput_1": out,
            }

        async def throughput_2() -> dict[str, Any]:
            second = await start_worker(stack, "worker-2")
            try:
                out = await throughput.measure(stack, scale, "2", first="baseline")
            finally:
                await stop_worker(stack, second)
            return {
                "throughput_2_workers": out["per_second"],
                "throughput_2_ratio": out["ratio"],
                "throughput_2": out,
            }

        await section(results, "throughput_1", throughput_1)
        await section(results, "throughput_2", throughput_2)
        # Last in the column: its fan-out keeps the worker busy for a while and leaves a large
        # run in its cache.
        await section(results, "dynamic", lambda: dynamic.measure(stack, scale))
    return results


async def run(workdir: Path, scale: Scale, api_error: str | None) -> dict[str, Any]:
    """The headline column on the SQLite file, then the same sections in memory."""
    columns = {}
    for store in STORES:
        (workdir / store / "definitions").mkdir(parents=True)
        columns[store] = await column(workdir / store, scale, store, api_error)
    # The memory section needs no Temporal: once, after both columns, filling its databases
    # while nothing else is measured.
    alone: dict[str, Any] = {"store": "no server", "errors": {}, "skipped": {}, "section_s": {}}
    await section(alone, "memory", lambda: memory.measure(scale))
    headline = columns[STORES[0]]
    return {
        "scale": scale.name,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        # What produced these figures, as published results name it (bench/docs.py).
        "command": f"BENCH_SCALE={scale.name} make bench",
        # Top-level figures are the headline column's; other tools read them from here.
        **{k: v for k, v in headline.items() if k != "store"},
        **{k: v for k, v in alone.items() if k not in ("store", "errors", "skipped", "section_s")},
        "errors": {**headline["errors"], **alone["errors"]},
        "section_s": {**headline["section_s"], **alone["section_s"]},
        "headline": STORES[0],
        "columns": columns,
    }


class Interrupted(Exception):
    """The bench was stopped by a signal; every child it started has been stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


async def interruptible(main: Coroutine[Any, Any, T]) -> T:
    """`main`, cancelled by the first SIGINT or SIGTERM so that its `finally` and `with` blocks
    stop every child; later signals are ignored until they have. Raising from a signal handler
    instead lands anywhere, a second Ctrl-C in the middle of stopping the children, and leaves
    them running (or a lock taken, with the process waiting on a worker thread for good)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    got: list[int] = []

    def on_signal(signum: int) -> None:
        if got:
            print("bench: still stopping its processes", file=sys.stderr, flush=True)
            return
        got.append(signum)
        print("bench: stopping its processes", file=sys.stderr, flush=True)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if got:
            raise Interrupted(got[0]) from None
        raise


def main() -> int:
    scale = scale_from_env()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-"))
    started = time.perf_counter()
    keep = True
    try:
        results = asyncio.run(interruptible(run(workdir, scale, api_missing())))
        keep = bool(results["errors"]) or any(c["errors"] for c in results["columns"].values())
    except Interrupted as err:
        print(f"bench interrupted ({err}); its processes are stopped", file=sys.stderr)
        return 128 + err.signum
    except StartupFailed as err:
        print(f"bench could not start: {err}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"bench logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    json_path = report.write_json(results)
    png_path = report.write_chart(results)
    print(report.table(results))
    print(f"\nwall time {results['wall_s']} s; wrote {json_path} and {png_path}")
    return 1 if keep else 0


if __name__ == "__main__":
    sys.exit(main())
