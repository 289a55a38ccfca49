"""The bench's outputs: a table on stdout, bench/results/latest.json and latest.png."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or over ssh; must precede the pyplot import

import matplotlib.pyplot as plt

from bench import report_dynamic
from bench.cells import Row, num, render, verdict
from bench.governed import report_rows as governed_rows
from bench.memory import report_rows as memory_rows

RESULTS = Path(__file__).resolve().parent / "results"
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
    "worker_rss_mb_parked",
    "fanout_ratio",
    "fanout_events_ratio",
    "fanout_largest_run_events",
    "repeat_ratio",
)


def _pair(r: Mapping[str, Any], p50: str, p99: str, unit: str = " ms") -> str:
    if r.get(p50) is None:
        return "-"
    return f"{num(r[p50])} / {num(r.get(p99))}{unit}"


def rows(r: Mapping[str, Any]) -> list[Row]:
    dec = r.get("decision_ms") or {}
    parked = r.get("parked") or {}
    status = r.get("status_ms") or {}
    inbox = parked.get("inbox") or {}
    n_parked, n_cached = parked.get("parked_runs", "?"), parked.get("cached_runs", "?")
    sse = r.get("sse_idle") or {}
    added = sse.get("cpu_per_s_added") or {}

    def sub(group: Mapping[str, Any], name: str) -> str:
        d = group.get(name)
        return f"{num(d['p50'])} / {num(d['p99'])} ms" if d else "-"

    def p50(group: Mapping[str, Any], name: str) -> str:
        d = group.get(name)
        return f"{num(d['p50'])} ms" if d else "-"

    pipe, base = r.get("pipeline_run_ms") or {}, r.get("baseline_run_ms") or {}
    out = [
        (
            "interpreter / baseline (run p50)",
            num(r.get("overhead_ratio"), "x", 3),
            *verdict(r, "overhead_ratio"),
        ),
        (
            "  pipeline run p50 / p99",
            f"{num(pipe.get('p50'))} / {num(pipe.get('p99'))} ms",
            "",
            "",
        ),
        (
            "  baseline run p50 / p99",
            f"{num(base.get('p50'))} / {num(base.get('p99'))} ms",
            "",
            "",
        ),
        (
            "step overhead p50 / p99",
            _pair(r, "step_overhead_ms_p50", "step_overhead_ms_p99"),
            *verdict(r, "step_overhead_ms_p50"),
        ),
        (
            "decision (update) -> step started p50 / p99",
            _pair(r, "decision_latency_ms_p50", "decision_latency_ms_p99"),
            *verdict(r, "decision_latency_ms_p50"),
        ),
        (
            "  update: sent -> applied / RPC returned",
            f"{p50(dec.get('update', {}), 'applied')} / {p50(dec.get('update', {}), 'ack')}",
            "",
            "",
        ),
        (
            "decision (signal) -> step started p50 / p99",
            _pair(r, "decision_latency_signal_ms_p50", "decision_latency_signal_ms_p99"),
            *verdict(r, "decision_latency_signal_ms_p50"),
        ),
        (
            "  signal: sent -> applied / RPC returned",
            f"{p50(dec.get('signal', {}), 'applied')} / {p50(dec.get('signal', {}), 'ack')}",
            "",
            "",
        ),
        (
            "GET /workflows/{id} idle p50 / p99",
            _pair(r, "status_ms_p50_idle", "status_ms_p99_idle"),
            *verdict(r, "status_ms_p99_idle"),
        ),
        (
            f"GET /workflows/{{id}} {status.get('load_clients', '?')} clients back to back "
            "p50 / p99",
            _pair(r, "status_ms_p50_load", "status_ms_p99_load"),
            *verdict(r, "status_ms_p99_load"),
        ),
        (
            f"  served / s back to back, and with each polling every "
            f"{status.get('paced_interval_s', '?')} s",
            f"{num(status.get('load_requests_per_s'))} / {num(status.get('paced_requests_per_s'))}",
            "",
            "",
        ),
        (
            f"GET /workflows/{{id}} {status.get('load_clients', '?')} clients polling p50 / p99",
            _pair(r, "status_ms_p50_paced", "status_ms_p99_paced"),
            "",
            "",
        ),
        (
            "  failed requests idle / back to back / polling",
            " / ".join(str(v) for v in (status.get("failed_requests") or {}).values()) or "-",
            "",
            "",
        ),
        (
            f"{sse.get('streams', '?')} idle /events streams on {sse.get('runs', '?')} runs: "
            "CPU s/s added, API / worker / server",
            " / ".join(num(added.get(k), digits=3) for k in ("api", "worker-1", "temporal"))
            if added
            else "-",
            "",
            "",
        ),
        ("throughput, 1 worker", num(r.get("throughput_1_worker"), " runs/s"), "", ""),
        ("throughput, 2 workers", num(r.get("throughput_2_workers"), " runs/s"), "", ""),
        ("worker RSS idle", num(parked.get("worker_rss_mb_idle"), " MiB"), "", ""),
        (
            f"worker RSS, {n_cached} runs cached",
            num(r.get("worker_rss_mb_cached"), " MiB"),
            "",
            "",
        ),
        (
            f"worker RSS, {n_parked} runs parked",
            num(r.get("worker_rss_mb_parked"), " MiB"),
            *verdict(r, "worker_rss_mb_parked"),
        ),
        (f"inbox count ({n_parked} parked) p50 / p99", sub(inbox, "count_ms"), "", ""),
        (f"inbox first {100} rows p50 / p99", sub(inbox, "first_page_ms"), "", ""),
        (f"inbox list all {n_parked}", p50(inbox, "list_all_ms"), "", ""),
        ("GET /approvals p50 / p99", sub(inbox, "api_approvals_ms"), "", ""),
        (
            f"approve all {n_parked} (updates, 50 at a time)",
            num(parked.get("approve_all_s"), " s", 2)
            + f" ({num(parked.get('approvals_per_s'))}/s)",
            "",
            "",
        ),
        *report_dynamic.rows(r),
        *memory_rows(r),
        *governed_rows(r),
    ]
    return out


def table(r: Mapping[str, Any]) -> str:
    head = (
        f"Stepgate bench, scale {r['scale']}: {r['machine']['cpus']} CPUs, "
        f"Python {r['machine']['python']}, temporalio {r['machine']['temporalio']}"
    )
    lines = [head, "", render(rows(r))]
    for section, why in (r.get("skipped") or {}).items():
        lines.append(f"skipped {section}: {why}")
    for section, why in (r.get("errors") or {}).items():
        lines.append(f"FAILED {section}: {why}")
    return "\n".join(lines)


def write_json(r: Mapping[str, Any], path: Path = RESULTS / "latest.json") -> Path:
    data = {key: r.get(key) for key in REQUIRED_KEYS} | dict(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def write_chart(r: Mapping[str, Any], path: Path = RESULTS / "latest.png") -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    fig.suptitle(f"Stepgate bench ({r['scale']}, {r['timestamp']})")
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
    _simple(
        axes[1][0],
        "throughput (runs/s)",
        {"1 worker": r.get("throughput_1_worker"), "2 workers": r.get("throughput_2_workers")},
    )
    parked = r.get("parked") or {}
    _simple(
        axes[1][1],
        "worker RSS (MiB); 1 GiB target",
        {
            "idle": parked.get("worker_rss_mb_idle"),
            f"{parked.get('cached_runs', '?')} cached": parked.get("worker_rss_mb_cached"),
            f"{parked.get('parked_runs', '?')} parked": parked.get("worker_rss_mb_parked"),
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
