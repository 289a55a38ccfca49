"""The bench's outputs: a table on stdout, bench/results/latest.json and latest.png."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or over ssh; must precede the pyplot import

import matplotlib.pyplot as plt

from bench import report_dynamic
from bench.cells import num as _num
from bench.cells import verdict as _verdict
from bench.governed import report_rows as governed_rows
from bench.memory import report_rows as memory_rows
from bench.starvation import report_rows as starvation_rows

RESULTS = Path(__file__).resolve().parent / "results"
COLUMN_TITLES = {"file": "SQLite file (make run)", "memory": "in memory"}
# Keys other tools read from latest.json: always present, null when a section did not run.
REQUIRED_KEYS = (
    "overhead_ratio",
    "step_overhead_ms_p50",
    "step_overhead_ms_p99",
    "decision_latency_ms_p50",
    "decision_latency_signal_ms_p50",
    "status_ms_p99_idle",
    "status_ms_p99_load",
    "throughput_1_worker",
    "throughput_2_workers",
    "throughput_1_ratio",
    "throughput_2_ratio",
    "worker_rss_mb_parked",
    "worker_rss_mb_peak",
    "approve_all_s",
    "overhead_regular_ratio",
    "pipeline_run_ms_p50",
    "fanout_ratio",
    "fanout_events_ratio",
    "fanout_largest_run_events",
    "repeat_ratio",
    "starvation_decision_ms_p99",
    "starvation_status_ms_p99",
)


def _pair(r: Mapping[str, Any], p50: str, p99: str, unit: str = " ms") -> str:
    if r.get(p50) is None:
        return "-"
    return f"{_num(r[p50])} / {_num(r.get(p99))}{unit}"


# A row: its label, how to render it from one column's results, and the target it is held to.
Row = tuple[str, Callable[[Mapping[str, Any]], str], str | None]


def _ms(d: Mapping[str, Any] | None) -> str:
    return f"{_num(d['p50'])} / {_num(d['p99'])} ms" if d else "-"


def _p50(d: Mapping[str, Any] | None) -> str:
    return f"{_num(d['p50'])} ms" if d else "-"


# Which processes a CPU row adds up, by name prefix (bench/stack.py's cpu_seconds), and what the
# row's label calls them.
SERVER_WORKER_API = (("temporal", "server"), ("worker", "worker"), ("api", "API"))


def throughput_rows(
    key: str,
    workers: str,
    parts: tuple[tuple[str, str], ...] = SERVER_WORKER_API,
    sides: tuple[str, ...] = ("pipeline",),
    bound: bool = True,
) -> list[Row]:
    """The rows of one throughput.measure result kept under `key` (its ratio under
    `{key}_ratio`), on `workers` ("1 worker"): runs/s, the ratio, the CPU per run of each of
    `sides` summed over the `parts` processes ("-" for a part no process matched), and (with
    `bound`) what bound it."""

    def part(r: Mapping[str, Any], side: str) -> Mapping[str, Any]:
        return (r.get(key) or {}).get(side) or {}

    def cpu(side: str) -> Callable[[Mapping[str, Any]], str]:
        def render(r: Mapping[str, Any]) -> str:
            used = part(r, side).get("cpu_ms_per_run") or {}
            if not used:
                return "-"
            return " / ".join(
                _num(sum(v for k, v in used.items() if k.startswith(p)), digits=1)
                if any(k.startswith(p) for k in used)
                else "-"
                for p, _ in parts
            )

        return render

    names = " / ".join(name for _, name in parts)
    return [
        (
            f"throughput, {workers}: pipeline / baseline runs/s",
            lambda r: (
                f"{_num(part(r, 'pipeline').get('per_second'))} / "
                f"{_num(part(r, 'baseline').get('per_second'))}"
            ),
            None,
        ),
        (
            f"  pipeline / baseline, {workers}",
            lambda r: _num(r.get(f"{key}_ratio"), "x", 3),
            f"{key}_ratio",
        ),
        *((f"  {side} CPU ms per run, {names}", cpu(side), None) for side in sides),
        *(
            [("  bound by", lambda r: str((r.get(key) or {}).get("bound", "-")), None)]
            if bound
            else []
        ),
    ]


def _dec(r: Mapping[str, Any], via: str, what: str) -> Mapping[str, Any] | None:
    got: Mapping[str, Any] | None = ((r.get("decision_ms") or {}).get(via) or {}).get(what)
    return got


def latency_rows() -> list[Row]:
    """The overhead and decision sections' rows: run times and ratios against the hand-written
    baseline, the step overhead, and a decision's way to the gated step's start."""
    return [
        (
            "interpreter / baseline, local activities (run p50)",
            lambda r: _num(r.get("overhead_ratio"), "x", 3),
            "overhead_ratio",
        ),
        (
            "  pipeline run p50 / p99 (local activities)",
            lambda r: _ms(r.get("pipeline_run_ms")),
            "pipeline_run_ms_p50",
        ),
        (
            "  baseline run p50 / p99 (local activities)",
            lambda r: _ms(r.get("baseline_run_ms")),
            None,
        ),
        (
            "interpreter / baseline, regular activities (run p50)",
            lambda r: _num(r.get("overhead_regular_ratio"), "x", 3),
            "overhead_regular_ratio",
        ),
        (
            "  pipeline / baseline run p50, regular activities",
            lambda r: " / ".join(
                _p50((r.get("overhead_regular") or {}).get(side))
                for side in ("pipeline_run_ms", "baseline_run_ms")
            ),
            None,
        ),
        (
            "step overhead p50 / p99",
            lambda r: _pair(r, "step_overhead_ms_p50", "step_overhead_ms_p99"),
            "step_overhead_ms_p50",
        ),
        (
            "decision (update) -> step started p50 / p99",
            lambda r: _pair(r, "decision_latency_ms_p50", "decision_latency_ms_p99"),
            "decision_latency_ms_p50",
        ),
        (
            "  update: sent -> applied / RPC returned",
            lambda r: f"{_p50(_dec(r, 'update', 'applied'))} / {_p50(_dec(r, 'update', 'ack'))}",
            None,
        ),
        (
            "decision (signal) -> step started p50 / p99",
            lambda r: _pair(r, "decision_latency_signal_ms_p50", "decision_latency_signal_ms_p99"),
            "decision_latency_signal_ms_p50",
        ),
        (
            "  signal: sent -> applied / RPC returned",
            lambda r: f"{_p50(_dec(r, 'signal', 'applied'))} / {_p50(_dec(r, 'signal', 'ack'))}",
            None,
        ),
    ]


def rows(sample: Mapping[str, Any]) -> list[Row]:
    """The table's rows; labels that name a count take it from `sample` (the headline column)."""
    parked = sample.get("parked") or {}
    status = sample.get("status_ms") or {}
    sse = sample.get("sse_idle") or {}
    n_parked, n_cached = parked.get("parked_runs", "?"), parked.get("cached_runs", "?")
    clients = status.get("load_clients", "?")

    def sub(r: Mapping[str, Any], group: str, name: str) -> Mapping[str, Any] | None:
        got: Mapping[str, Any] | None = (
            (r.get(group) or {})
            if group != "inbox"
            else ((r.get("parked") or {}).get("inbox") or {})
        ).get(name)
        return got

    def sse_added(r: Mapping[str, Any]) -> str:
        added = (r.get("sse_idle") or {}).get("cpu_per_s_added") or {}
        keys = ("api", "worker-1", "temporal")
        return " / ".join(_num(added.get(k), digits=3) for k in keys) if added else "-"

    def approve(r: Mapping[str, Any]) -> str:
        p = r.get("parked") or {}
        return _num(p.get("approve_all_s"), " s", 1) + f" ({_num(p.get('approvals_per_s'))}/s)"

    def approve_baseline(r: Mapping[str, Any]) -> str:
        p = r.get("parked") or {}
        b = p.get("baseline") or {}
        if not b:
            return "-"
        return (
            _num(b.get("approve_all_s"), " s", 1)
            + f" ({_num(b.get('approvals_per_s'))}/s); Stepgate "
            + _num(p.get("approvals_vs_baseline"), "x", 3)
        )

    return [
        *latency_rows(),
        (
            "GET /workflows/{id} idle p50 / p99",
            lambda r: _pair(r, "status_ms_p50_idle", "status_ms_p99_idle"),
            "status_ms_p99_idle",
        ),
        (
            f"GET /workflows/{{id}} {clients} clients back to back p50 / p99",
            lambda r: _pair(r, "status_ms_p50_load", "status_ms_p99_load"),
            "status_ms_p99_load",
        ),
        (
            f"  served / s back to back, and with each polling every {status.get('paced_interval_s', '?')} s",
            lambda r: (
                f"{_num((r.get('status_ms') or {}).get('load_requests_per_s'))} / {_num((r.get('status_ms') or {}).get('paced_requests_per_s'))}"
            ),
            None,
        ),
        (
            "  CPU ms per request back to back, server / worker / API",
            lambda r: " / ".join(
                _num(
                    ((r.get("status_ms") or {}).get("load_cpu_ms_per_request") or {}).get(k),
                    digits=2,
                )
                for k in ("temporal", "worker-1", "api")
            ),
            None,
        ),
        (
            f"GET /workflows/{{id}} {clients} clients polling p50 / p99",
            lambda r: _pair(r, "status_ms_p50_paced", "status_ms_p99_paced"),
            None,
        ),
        (
            "  failed requests idle / back to back / polling",
            lambda r: (
                " / ".join(
                    str(v)
                    for v in ((r.get("status_ms") or {}).get("failed_requests") or {}).values()
                )
                or "-"
            ),
            None,
        ),
        (
            f"{sse.get('streams', '?')} idle /events streams on {sse.get('runs', '?')} runs: CPU s/s added, API / worker / server",
            sse_added,
            None,
        ),
        *throughput_rows("throughput_1", "1 worker"),
        *throughput_rows("throughput_2", "2 workers"),
        (
            "worker RSS idle",
            lambda r: _num((r.get("parked") or {}).get("worker_rss_mb_idle"), " MiB"),
            None,
        ),
        (
            f"worker RSS, {n_cached} runs parked",
            lambda r: _num(r.get("worker_rss_mb_cached"), " MiB"),
            None,
        ),
        (
            f"worker RSS, {n_parked} runs parked",
            lambda r: _num(r.get("worker_rss_mb_parked"), " MiB"),
            None,
        ),
        (
            f"worker RSS peak, parking and approving {n_parked}",
            lambda r: _num(r.get("worker_rss_mb_peak"), " MiB"),
            "worker_rss_mb_peak",
        ),
        (
            f"inbox count ({n_parked} parked) p50 / p99",
            lambda r: _ms(sub(r, "inbox", "count_ms")),
            None,
        ),
        (
            f"inbox first {100} rows p50 / p99",
            lambda r: _ms(sub(r, "inbox", "first_page_ms")),
            None,
        ),
        (f"inbox list all {n_parked}", lambda r: _p50(sub(r, "inbox", "list_all_ms")), None),
        ("GET /approvals p50 / p99", lambda r: _ms(sub(r, "inbox", "api_approvals_ms")), None),
        (f"approve all {n_parked} (POST /approvals/batch)", approve, "approve_all_s"),
        (
            "  approve CPU ms per run, server / worker / API",
            lambda r: " / ".join(
                _num(((r.get("parked") or {}).get("approve_cpu_ms_per_run") or {}).get(k), digits=2)
                for k in ("temporal", "worker-1", "api")
            ),
            None,
        ),
        (f"  hand-written gated workflow, approve all {n_parked}", approve_baseline, None),
        (
            "  its CPU ms per run, server / worker",
            lambda r: " / ".join(
                _num(
                    (
                        ((r.get("parked") or {}).get("baseline") or {}).get(
                            "approve_cpu_ms_per_run"
                        )
                        or {}
                    ).get(k),
                    digits=2,
                )
                for k in ("temporal", "worker-1")
            ),
            None,
        ),
    ]


def cells(r: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """The table as cells, its head row first: one row per figure with the headline column
    (SQLite file), the in-memory one, the target and the headline's verdict."""
    columns = r.get("columns") or {}
    names = list(columns)
    head_row = ("", *(COLUMN_TITLES.get(n, n) for n in names), "target", "")
    body: list[tuple[str, ...]] = [head_row]
    sample = columns.get(r.get("headline"), r)
    for label, render, key in rows(sample):
        shown = tuple(render(columns[n]) for n in names)
        verdict = _verdict(r, key) if key else ("", "")
        body.append((label, *shown, *verdict))
    # The dynamic, governed and starvation sections' rows render one column at a time; their
    # labels and targets are the headline column's.
    for section_rows in (report_dynamic.rows, governed_rows, starvation_rows):
        per_column = [section_rows(columns[n]) for n in names]
        for i, (label, _, limit, check) in enumerate(section_rows(sample)):
            shown = tuple(col[i][1] if i < len(col) else "-" for col in per_column)
            body.append((label, *shown, limit, check))
    # The memory section runs once, without Temporal: its figure sits in the first column.
    for label, value, limit, check in memory_rows(r):
        body.append((label, value, *("" for _ in names[1:]), limit, check))
    return body


def machine_line(r: Mapping[str, Any]) -> str:
    """The machine a run measured, as the table's head and the published results name it."""
    m = r["machine"]
    return (
        f"{m['cpus']} CPUs, Python {m['python']}, temporalio {m['temporalio']}, "
        f"load average at start {m.get('load_average_at_start')}"
    )


def table(r: Mapping[str, Any]) -> str:
    """One aligned line per figure (see `cells`), under the run's scale and machine."""
    body = cells(r)
    columns = r.get("columns") or {}
    names = list(columns)
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    head = f"Stepgate bench, scale {r['scale']}: {machine_line(r)}"
    lines = [head, ""]
    for row in body:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    headline = COLUMN_TITLES.get(str(r.get("headline")), "headline")
    lines.append(f"targets are checked against the {headline} column")
    for section, why in (r.get("errors") or {}).items():
        if all(section not in (c.get("errors") or {}) for c in columns.values()):
            lines.append(f"FAILED {section}: {why}")
    for name in names:
        for section, why in (columns[name].get("skipped") or {}).items():
            lines.append(f"skipped {name} {section}: {why}")
        for section, why in (columns[name].get("errors") or {}).items():
            lines.append(f"FAILED {name} {section}: {why}")
    return "\n".join(lines)


def write_json(r: Mapping[str, Any], path: Path = RESULTS / "latest.json") -> Path:
    data = {key: r.get(key) for key in REQUIRED_KEYS} | dict(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def write_chart(r: Mapping[str, Any], path: Path = RESULTS / "latest.png") -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    title = COLUMN_TITLES.get(str(r.get("headline")), "")
    fig.suptitle(f"Stepgate bench ({r['scale']}, {r['timestamp']}): {title}")
    _bars(
        axes[0][0],
        "run wall time (ms)",
        {
            "pipeline": r.get("pipeline_run_ms"),
            "baseline": r.get("baseline_run_ms"),
        },
    )
    dec = r.get("decision_ms") or {}
    status = r.get("status_ms") or {}
    _bars(
        axes[0][1],
        "latency (ms); target as a line",
        {
            "step overhead": r.get("step_overhead_ms"),
            "decision update": (dec.get("update") or {}).get("started"),
            "decision signal": (dec.get("signal") or {}).get("started"),
            "status idle": status.get("idle"),
            "status back to back": status.get("load"),
            "status polling": status.get("paced"),
        },
        targets=[15.0, 25.0, 25.0, 25.0, 60.0],
    )
    tp1, tp2 = r.get("throughput_1") or {}, r.get("throughput_2") or {}
    _simple(
        axes[1][0],
        "throughput (runs/s)",
        {
            "pipeline, 1 worker": tp1.get("per_second"),
            "baseline, 1 worker": tp1.get("baseline_per_second"),
            "pipeline, 2 workers": tp2.get("per_second"),
            "baseline, 2 workers": tp2.get("baseline_per_second"),
        },
    )
    parked = r.get("parked") or {}
    _simple(
        axes[1][1],
        "worker RSS (MiB); 1 GiB target",
        {
            "idle": parked.get("worker_rss_mb_idle"),
            f"{parked.get('cached_runs', '?')} cached": parked.get("worker_rss_mb_cached"),
            f"{parked.get('parked_runs', '?')} parked": parked.get("worker_rss_mb_parked"),
            "peak": parked.get("worker_rss_mb_peak"),
        },
        target=1024.0,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _bars(
    ax: Any,
    title: str,
    groups: Mapping[str, Mapping[str, Any] | None],
    targets: list[float] | None = None,
) -> None:
    ax.set_title(title)
    names = list(groups)
    for offset, pct in ((-0.2, "p50"), (0.2, "p99")):
        values = [(groups[n] or {}).get(pct) or 0.0 for n in names]
        ax.bar([i + offset for i in range(len(names))], values, width=0.4, label=pct)
    for i, limit in enumerate(targets or []):
        ax.hlines(limit, i - 0.45, i + 0.45, colors="red", linestyles="dashed")
    if targets:
        # Loaded status latency is two orders above the rest; a log axis keeps both readable.
        ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=15)
    ax.legend()


def _simple(
    ax: Any, title: str, values: Mapping[str, float | None], target: float | None = None
) -> None:
    ax.set_title(title)
    names = list(values)
    ax.bar(names, [values[n] or 0.0 for n in names])
    if target is not None:
        ax.axhline(target, color="red", linestyle="dashed")
