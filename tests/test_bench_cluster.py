"""The cluster bench's arguments and its table, without a server: what it is told to measure is
what it measures, and the table puts each stack's figures in its own column beside the
hand-written baseline's."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.client import Client

from bench import cluster_bench, docs
from bench.cluster_bench import DEV, Plan, parse
from bench.scale import FULL
from bench.stack import Stack, cpu_seconds
from tests.support.procs import Processes


def summary(p50: float) -> dict[str, float]:
    return {"n": 10, "p50": p50, "p99": p50 * 3, "mean": p50, "max": p50 * 4}


def column(key: str, workers: int, *, latency: bool, per_second: float) -> dict[str, Any]:
    """One column as the bench keeps it: throughput always, overhead and decisions if timed."""
    server = {"temporal": 20.0, **({} if key == DEV else {"postgres": 15.0})}
    cpu = {**server, **{f"worker-{i}": 24.0 / workers for i in range(1, workers + 1)}}
    out: dict[str, Any] = {
        "store": key,
        "workers": workers,
        "errors": {},
        "section_s": {},
        "load_average": {"start": [1.5, 1.0, 1.0], "end": [2.25, 1.0, 1.0]},
        "wall_s": 60.0,
        "throughput_ratio": round(per_second / (per_second + 1), 3),
        "throughput": {
            "per_second": per_second,
            "baseline_per_second": per_second + 1,
            "ratio": round(per_second / (per_second + 1), 3),
            "pipeline": {
                "per_second": per_second,
                "cpu_ms_per_run": {**cpu, "bench": 2.0},
                "cores_busy": 1.5,
            },
            "baseline": {
                "per_second": per_second + 1,
                "cpu_ms_per_run": {**cpu, "bench": 1.0},
                "cores_busy": 1.25,
            },
        },
    }
    if latency:
        out |= {
            "overhead_ratio": 1.125,
            "pipeline_run_ms": summary(45.0),
            "baseline_run_ms": summary(40.0),
            "step_overhead_ms_p50": 1.0,
            "step_overhead_ms_p99": 3.0,
            "decision_latency_ms_p50": 30.0,
            "decision_latency_ms_p99": 90.0,
        }
    return out


def results(errors: dict[str, str] | None = None) -> dict[str, Any]:
    columns = {
        DEV: column(DEV, 1, latency=True, per_second=50.0),
        "cluster-1": column("cluster-1", 1, latency=True, per_second=20.0),
        "cluster-2": column("cluster-2", 2, latency=True, per_second=30.0),
        "cluster-4": column("cluster-4", 4, latency=False, per_second=35.0),
    }
    columns["cluster-4"]["errors"] = errors or {}
    return {
        "bench": "cluster",
        "scale": "full",
        "throughput_runs": FULL.throughput_runs,
        "timestamp": "2026-12-07T12:00:00+00:00",
        "machine": {
            "cpus": 2,
            "python": "3.11.7",
            "temporalio": "1.35.0",
            "load_average_at_start": [1.5, 1.0, 1.0],
        },
        "load_average_at_end": [3.75, 2.0, 1.0],
        "command": "BENCH_SCALE=full python -m bench.cluster_bench --latency-workers 1,2",
        "commit": "abc1234",
        "columns": columns,
    }


def row(table: list[tuple[str, ...]], label: str) -> tuple[str, ...]:
    return next(r for r in table if r[0].strip() == label)


def test_defaults_measure_one_two_and_four_workers_with_latencies_at_each() -> None:
    """With no arguments the cluster runs 1, 2 and 4 workers, timing overhead and decisions at
    every count, on the server configuration as shipped."""
    assert parse([]) == Plan((1, 2, 4), (1, 2, 4), ())


def test_latency_workers_and_server_config_are_taken_as_given() -> None:
    """--latency-workers picks the counts that are timed one run at a time; --server-config
    values are read as the server's YAML would hold them."""
    plan = parse(
        [
            "--workers",
            "1,2,4",
            "--latency-workers",
            "1,2",
            "--server-config",
            "matching.numTaskqueueReadPartitions=1",
            "--server-config",
            'matching.wv.VersionDrainageStatusRefreshInterval="5s"',
        ]
    )
    assert plan == Plan(
        (1, 2, 4),
        (1, 2),
        (
            ("matching.numTaskqueueReadPartitions", 1),
            ("matching.wv.VersionDrainageStatusRefreshInterval", "5s"),
        ),
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0,1"],
        ["--workers", "1,9"],
        ["--workers", "2,1"],
        ["--workers", "1,1,2"],
        ["--workers", "one"],
        ["--workers", ""],
        ["--workers", "1,2", "--latency-workers", "4"],
        ["--server-config", "no-equals-sign"],
        ["--server-config", "bad key=1"],
        ["--server-config", "key=[unclosed"],
    ],
)
def test_bad_arguments_stop_it_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Worker counts out of 1..8, not ascending, repeated or not numbers, latency counts that
    are not measured, and a malformed --server-config each exit with argparse's usage error."""
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2
    assert "python -m bench.cluster_bench" in capsys.readouterr().err


def test_the_printed_command_runs_the_same_plan_again() -> None:
    """The command the results name, parsed again, is the plan that produced them."""
    plan = Plan((1, 2), (1,), (("history.transferProcessorMaxPollRPS", 1000), ("x.y", "5s")))
    printed = cluster_bench.command(FULL, plan)
    words = shlex.split(printed)
    assert words[:4] == ["BENCH_SCALE=full", "python", "-m", "bench.cluster_bench"]
    assert parse(words[4:]) == plan
    assert cluster_bench.command(FULL, Plan()) == "BENCH_SCALE=full python -m bench.cluster_bench"


def test_the_table_has_a_column_per_stack_and_the_baseline_beside_stepgate() -> None:
    """Columns are the dev server then the cluster at each worker count; each throughput cell
    shows Stepgate's runs/s beside the baseline's and their ratio, PostgreSQL's CPU where there
    is one, and a column that timed no latencies shows '-' there."""
    table = cluster_bench.cells(results())
    assert table[0] == (
        "",
        "dev server, 1 worker",
        "cluster, 1 worker",
        "cluster, 2 workers",
        "cluster, 4 workers",
        "target",
    )
    assert row(table, "throughput, 1000 runs a side: pipeline / baseline runs/s")[1:5] == (
        "50.0 / 51.0",
        "20.0 / 21.0",
        "30.0 / 31.0",
        "35.0 / 36.0",
    )
    ratio = row(table, "pipeline / baseline, 1000 runs a side")
    assert ratio[1:] == ("0.980x", "0.952x", "0.968x", "0.972x", ">= 0.9x")
    cpu = row(table, "pipeline CPU ms per run, server / PostgreSQL / workers / bench")
    assert cpu[1:5] == (
        "20.0 / - / 24.0 / 2.0",
        "20.0 / 15.0 / 24.0 / 2.0",
        "20.0 / 15.0 / 24.0 / 2.0",
        "20.0 / 15.0 / 24.0 / 2.0",
    )
    base_cpu = row(table, "baseline CPU ms per run, server / PostgreSQL / workers / bench")
    assert base_cpu[2] == "20.0 / 15.0 / 24.0 / 1.0"
    assert row(table, "cores busy, pipeline / baseline")[1] == "1.50 / 1.25"
    assert row(table, "busiest process, pipeline")[1:3] == ("worker-1 52%", "worker-1 39%")
    overhead = row(table, "interpreter / baseline, local activities (run p50)")
    assert overhead[1:] == ("1.125x", "1.125x", "1.125x", "-", "<= 1.15x")
    assert row(table, "step overhead p50 / p99")[3:5] == ("1.0 / 3.0 ms", "-")
    assert row(table, "load average (1 min) at column start / end")[1] == "1.50 / 2.25"


def test_the_printed_table_names_the_load_the_commit_and_what_failed() -> None:
    """The head line gives the load average at start and end and the commit; a section that
    failed is named under the table with its column."""
    printed = cluster_bench.table(results({"throughput": "TimeoutError: "}))
    head = printed.splitlines()[0]
    assert "commit abc1234" in head
    assert "load average at start [1.5, 1.0, 1.0], at end [3.75, 2.0, 1.0]" in head
    assert "FAILED cluster-4 throughput: TimeoutError: " in printed.splitlines()
    assert "FAILED" not in cluster_bench.table(results())


def test_a_run_publishes_as_a_result_the_docs_page_accepts(tmp_path: Path) -> None:
    """bench.docs --publish turns a cluster run into a result with its date, load, command and
    commit, every row as wide as the columns, which the page generator loads."""
    published = docs.from_bench(results())
    assert published["columns"][1:] == [
        "dev server, 1 worker",
        "cluster, 1 worker",
        "cluster, 2 workers",
        "cluster, 4 workers",
        "target",
    ]
    assert published["date"] == "2026-12-07"
    assert published["recorded_at"] == "abc1234"
    assert "load average 1.5 at start and 3.75 at end" in published["machine"]
    (tmp_path / "cluster.json").write_text(json.dumps(published))
    assert docs.load(tmp_path)["cluster"]["command"] == results()["command"]


def test_cpu_figures_count_the_servers_services(tmp_path: Path) -> None:
    """A process the server needs (the cluster's PostgreSQL) is in the CPU per process that the
    throughput section reports, under its own name."""
    with Processes(tmp_path) as procs:
        child = procs.spawn(
            "postgres", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path
        )
        stack = Stack(procs, tmp_path, "127.0.0.1:1", cast(Client, None), {}, services=[child])
        assert set(cpu_seconds(stack)) == {"postgres", "bench"}
