"""`python -m bench.cluster_bench`: Stepgate on a Temporal cluster on PostgreSQL, beside the dev
server, each against the hand-written baseline on the same stack, in one run.

First scripts/dev-server with history in its SQLite file, as `make run` starts it, and one
worker process; then the cluster of bench/cluster.py (PostgreSQL, the Temporal server 1.29.1
configured by deploy/temporal/) with 1, then 2, then 4 worker processes (`bench.worker`:
Stepgate's worker plus the hand-written baselines; each count adds workers to the running ones).
Every column runs the bench's own sections, unchanged: step overhead (bench/overhead.py) and
decision latency (bench/decision.py), one run at a time, then throughput (bench/throughput.py),
as many runs at once as BENCH_SCALE says. Each stack is stopped before the next starts.

    --workers 1,2,4           the cluster's worker counts (ascending)
    --latency-workers 1,2     the counts that also time overhead and decisions (default: all)
    --server-config K=V       dynamic config of the cluster's server on top of deploy/temporal's

Prints one table (a column per stack and worker count, the load average at each column's start
and end) and writes bench/results/cluster-latest.json. BENCH_SCALE=quick (a few minutes) or full
(default). Ctrl-C or SIGTERM stops every process it started, as `python -m bench` does, and
exits 130 or 143; logs stay in the printed folder when something failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from bench import decision, overhead, throughput
from bench.__main__ import Interrupted, interruptible, machine, section
from bench.cells import num, render, verdict
from bench.cluster import Cluster, ClusterError, Ports
from bench.report import RESULTS, Row, latency_rows, throughput_rows
from bench.scale import TARGETS, Scale, scale_from_env
from bench.stack import ROOT, Stack, child_env, open_stack, server_argv, start_worker
from tests.support.procs import Processes, StartupFailed

RESULTS_FILE = RESULTS / "cluster-latest.json"
DEV = "dev"
MAX_WORKERS = 8
DEFAULT_WORKERS = (1, 2, 4)
# The processes a CPU figure adds up (by name prefix) and what the table calls them. On the dev
# server SQLite is inside the server's process, so its PostgreSQL cell is "-".
PARTS = (
    ("temporal", "server"),
    ("postgres", "PostgreSQL"),
    ("worker", "workers"),
    ("bench", "bench"),
)
# The throughput ratio is held to the target `python -m bench` holds it to.
TARGET_OF = {"throughput_ratio": "throughput_1_ratio"}


@dataclass(frozen=True)
class Plan:
    """The cluster's worker counts, and those whose columns also time overhead and decisions."""

    workers: tuple[int, ...] = DEFAULT_WORKERS
    latency_workers: tuple[int, ...] = DEFAULT_WORKERS
    # Dynamic config of the cluster's server on top of deploy/temporal/dynamicconfig.yaml.
    server_config: tuple[tuple[str, object], ...] = ()


def setting(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with VALUE read as YAML (`1000`, `true`, `"5s"`), as the server's dynamic
    config file would hold it."""
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*", key):
        raise argparse.ArgumentTypeError(f"{text!r}: KEY=VALUE, a dynamic config key")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not YAML: {err}") from None


def counts(text: str) -> tuple[int, ...]:
    """`1,2,4` as (1, 2, 4): ascending, each once, each from 1 to MAX_WORKERS (workers are only
    ever added to the running ones)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts like 1,2,4") from None
    if any(not 1 <= v <= MAX_WORKERS for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: each count from 1 to {MAX_WORKERS}")
    if list(values) != sorted(set(values)):
        raise argparse.ArgumentTypeError(f"{text!r}: counts ascending, each once")
    return values


def parse(argv: Sequence[str] | None = None) -> Plan:
    p = argparse.ArgumentParser(
        prog="python -m bench.cluster_bench", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("--workers", type=counts, default=DEFAULT_WORKERS, help="e.g. 1,2,4")
    p.add_argument(
        "--latency-workers", type=counts, default=None, help="a subset of --workers (default: all)"
    )
    p.add_argument(
        "--server-config",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dynamic config of the cluster's server (repeatable)",
    )
    args = p.parse_args(argv)
    latency = args.latency_workers or args.workers
    if not set(latency) <= set(args.workers):
        p.error(f"--latency-workers {latency}: not all in --workers {args.workers}")
    return Plan(args.workers, latency, tuple(args.server_config))


def column_key(workers: int) -> str:
    return f"cluster-{workers}"


def column_title(key: str, workers: int) -> str:
    stack = "dev server" if key == DEV else "cluster"
    return f"{stack}, {workers} worker{'s' if workers > 1 else ''}"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def new_column(key: str, workers: int) -> dict[str, Any]:
    # `store` names the column in section()'s progress lines, as in `python -m bench`.
    return {"store": key, "workers": workers, "errors": {}, "section_s": {}, "load_average": {}}


async def measure(
    results: dict[str, Any],
    stack: Stack,
    scale: Scale,
    *,
    latency: bool,
    first: Literal["pipeline", "baseline"],
) -> None:
    """The sections on the workers running now, each result merged into `results`."""
    results["load_average"]["start"] = load()
    started = time.perf_counter()
    if latency:
        await section(results, "overhead", lambda: overhead.measure(stack, scale))
        await section(results, "decision", lambda: decision.measure(stack, scale))

    async def runs_per_second() -> dict[str, Any]:
        label = f"{results['store']}-{len(stack.workers)}"
        out = await throughput.measure(stack, scale, label, first=first)
        return {"throughput": out, "throughput_ratio": out["ratio"]}

    await section(results, "throughput", runs_per_second)
    results["load_average"]["end"] = load()
    results["wall_s"] = round(time.perf_counter() - started, 1)


async def dev_column(workdir: Path, scale: Scale) -> dict[str, Any]:
    """scripts/dev-server on its SQLite file and one worker, every section."""
    results = new_column(DEV, 1)
    (workdir / "definitions").mkdir(parents=True)
    with Processes(workdir) as procs:
        try:
            stack = await open_stack(procs, workdir, store="file")
            results["server_argv"] = server_argv(stack.server)
            await start_worker(stack, "worker-1")
        except StartupFailed as err:
            results["errors"]["start"] = str(err)
            return results
        await measure(results, stack, scale, latency=True, first="pipeline")
    return results


async def cluster_columns(workdir: Path, scale: Scale, plan: Plan) -> dict[str, dict[str, Any]]:
    """The cluster, started once, with workers added for each count in `plan`."""
    columns = {column_key(n): new_column(column_key(n), n) for n in plan.workers}
    (workdir / "definitions").mkdir(parents=True)
    # Stopped in reverse start order on leaving: workers, then the server, then PostgreSQL.
    with Processes(workdir) as procs:
        config = dict(plan.server_config)
        cluster = Cluster(workdir / "temporal", Ports.free(), procs=procs, dynamic_config=config)
        try:
            await cluster.start()
            if cluster.client is None or cluster.server is None or cluster.postgres is None:
                raise ClusterError("the cluster started without its server or PostgreSQL")
        except (ClusterError, StartupFailed) as err:
            for results in columns.values():
                results["errors"]["start"] = f"{type(err).__name__}: {err}"
            return columns
        stack = Stack(
            procs=procs,
            workdir=workdir,
            address=cluster.address,
            client=cluster.client,
            env=child_env(workdir, cluster.address),
            server=cluster.server,
            services=[cluster.postgres],
        )
        for i, n in enumerate(plan.workers):
            results = columns[column_key(n)]
            try:
                names = [f"worker-{k}" for k in range(len(stack.workers) + 1, n + 1)]
                await asyncio.gather(*(start_worker(stack, name) for name in names))
            except StartupFailed as err:
                results["errors"]["start"] = str(err)
                break
            # Which side goes first alternates between counts, as in `python -m bench`.
            first: Literal["pipeline", "baseline"] = "pipeline" if i % 2 == 0 else "baseline"
            await measure(results, stack, scale, latency=n in plan.latency_workers, first=first)
    return columns


def commit() -> str | None:
    """The revision measured (`-dirty` when the tree has changes), or None outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def command(scale: Scale, plan: Plan) -> str:
    argv = ["python", "-m", "bench.cluster_bench"]
    if plan.workers != DEFAULT_WORKERS:
        argv += ["--workers", ",".join(map(str, plan.workers))]
    if plan.latency_workers != plan.workers:
        argv += ["--latency-workers", ",".join(map(str, plan.latency_workers))]
    for key, value in plan.server_config:
        argv += ["--server-config", shlex.quote(f"{key}={json.dumps(value)}")]
    return f"BENCH_SCALE={scale.name} " + " ".join(argv)


async def run(workdir: Path, scale: Scale, plan: Plan) -> dict[str, Any]:
    started = machine()  # with the load average at the start
    columns = {DEV: await dev_column(workdir / "dev", scale)}
    columns |= await cluster_columns(workdir / "cluster", scale, plan)
    return {
        "bench": "cluster",
        "scale": scale.name,
        "throughput_runs": scale.throughput_runs,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": started,
        "load_average_at_end": load(),
        "command": command(scale, plan),
        "commit": commit(),
        "workers": list(plan.workers),
        "latency_workers": list(plan.latency_workers),
        "server_config": dict(plan.server_config),
        "columns": columns,
    }


def _load(r: Mapping[str, Any]) -> str:
    la = r.get("load_average") or {}
    start, end = la.get("start"), la.get("end")
    return f"{num(start[0], digits=2) if start else '-'} / {num(end[0], digits=2) if end else '-'}"


def _cores(r: Mapping[str, Any]) -> str:
    sides = [((r.get("throughput") or {}).get(side) or {}) for side in ("pipeline", "baseline")]
    return " / ".join(num(s.get("cores_busy"), digits=2) for s in sides)


def _busiest(r: Mapping[str, Any]) -> str:
    """The process that used most CPU per pipeline run, and its share of all of it."""
    pipeline = (r.get("throughput") or {}).get("pipeline") or {}
    used: dict[str, float] = pipeline.get("cpu_ms_per_run") or {}
    if not used:
        return "-"
    name = max(used, key=lambda k: used[k])
    return f"{name} {used[name] / max(sum(used.values()), 1e-9):.0%}"


def rows(r: Mapping[str, Any]) -> list[Row]:
    """The table's rows: throughput first (every column has it), then overhead and decisions,
    then the load on the machine while the column ran."""
    runs = r.get("throughput_runs", "?")
    return [
        *throughput_rows(
            "throughput",
            f"{runs} runs a side",
            parts=PARTS,
            sides=("pipeline", "baseline"),
            bound=False,
        ),
        ("  cores busy, pipeline / baseline", _cores, None),
        ("  busiest process, pipeline", _busiest, None),
        *latency_rows(),
        ("load average (1 min) at column start / end", _load, None),
        ("column wall time", lambda c: num(c.get("wall_s"), " s"), None),
    ]


def cells(r: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Head row, then one row per measure: a cell per column and the target it is held to."""
    columns: Mapping[str, Mapping[str, Any]] = r.get("columns") or {}
    head = ("", *(column_title(k, c["workers"]) for k, c in columns.items()), "target")
    body: list[tuple[str, ...]] = [head]
    for label, cell, key in rows(r):
        target = TARGET_OF.get(key or "", key)
        limit = verdict(r, target)[0] if target in TARGETS else ""
        body.append((label, *(cell(c) for c in columns.values()), limit))
    return body


def table(r: Mapping[str, Any]) -> str:
    m = r["machine"]
    head = (
        f"Stepgate on a Temporal cluster, scale {r['scale']}: {m['cpus']} CPUs, Python "
        f"{m['python']}, temporalio {m['temporalio']}, commit {r.get('commit') or '?'}; load "
        f"average at start {m['load_average_at_start']}, at end {r.get('load_average_at_end')}"
    )
    lines = [head, "", render(cells(r)), ""]
    lines.append(
        "dev server: scripts/dev-server, history in its SQLite file; cluster: the Temporal "
        "server 1.29.1 on PostgreSQL (bench/cluster.py, deploy/temporal/); baseline: the "
        "hand-written workflows of bench/baseline.py on the same workers"
    )
    for key, c in (r.get("columns") or {}).items():
        for name, why in (c.get("errors") or {}).items():
            lines.append(f"FAILED {key} {name}: {why}")
    return "\n".join(lines)


def published(r: Mapping[str, Any]) -> dict[str, Any]:
    """A run as a result bench/docs.py publishes (`python -m bench.docs --publish NAME --from
    bench/results/cluster-latest.json`)."""
    m = r["machine"]
    head, *body = cells(r)
    return {
        "title": f"Cluster beside the dev server at {r['scale']} scale",
        "date": str(r["timestamp"])[:10],
        "machine": (
            f"{m['cpus']} CPUs shared with other work, load average "
            f"{m['load_average_at_start'][0]} at start and {r['load_average_at_end'][0]} at end"
        ),
        "command": r["command"],
        **({"recorded_at": r["commit"]} if r.get("commit") else {}),
        "columns": ["measure", *head[1:]],
        "rows": [[row[0].strip(), *row[1:]] for row in body],
    }


def write_json(r: Mapping[str, Any], path: Path = RESULTS_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r, indent=2, default=str) + "\n")
    return path


def failed(r: Mapping[str, Any]) -> bool:
    return any(c["errors"] for c in r["columns"].values())


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse(argv)
    scale = scale_from_env()
    workdir = Path(tempfile.mkdtemp(prefix="stepgate-bench-cluster-"))
    # As root PostgreSQL runs as its own user, which must reach its folder under this one.
    workdir.chmod(0o755)
    started = time.perf_counter()
    keep = True
    try:
        results = asyncio.run(interruptible(run(workdir, scale, plan)))
        keep = failed(results)
    except Interrupted as err:
        print(f"bench interrupted ({err}); its processes are stopped", file=sys.stderr)
        return 128 + err.signum
    finally:
        if keep:
            print(f"bench logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    path = write_json(results)
    print(table(results))
    print(f"\nwall time {results['wall_s']} s; wrote {path}")
    return 1 if keep else 0


if __name__ == "__main__":
    sys.exit(main())
