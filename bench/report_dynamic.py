"""The dynamic section's rows of the report table (bench/dynamic.py measures them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.cells import Row, num, verdict


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _ratio(a: Any, b: Any, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}x" if a is not None and b else "-"


def _loop(r: Mapping[str, Any], label: str, what: str) -> list[Row]:
    loop = r.get(label) or {}
    if not loop:
        return [(what, "-", "", "")]
    pipe, base = loop["pipeline_ms"], loop["baseline_ms"]
    return [
        (
            f"{what}, {loop['iterations']} iterations, per iteration p50: pipeline / baseline",
            f"{num(pipe['p50'])} / {num(base['p50'])} ms "
            f"({_ratio(pipe['p50'], base['p50'], 3)}, {loop['overhead_ms_p50']:+.1f} ms)",
            "",
            "",
        ),
        (
            "  per iteration p99",
            f"{num(pipe['p99'])} / {num(base['p99'])} ms",
            "",
            "",
        ),
    ]


def _median(r: Mapping[str, Any]) -> str:
    pairs = r.get("fanout_pairs") or 1
    return f", median of {pairs}" if pairs > 1 else ""


def _query(seconds: float | None, error: str | None) -> str:
    if error:
        return f"failed: {error}"[:80]
    return f"{num(seconds, digits=2)} s" if seconds is not None else "-"


def rows(r: Mapping[str, Any]) -> list[Row]:
    items, parallel = r.get("fanout_items", "?"), r.get("fanout_parallel", "?")
    cpu = r.get("fanout_cpu_s") or {}
    worker = [(cpu.get(side) or {}).get("worker-1") for side in ("pipeline", "baseline")]
    suggested = r.get("fanout_suggested_at")
    query_s = r.get("fanout_status_query_s")
    every = (r.get("repeat_every") or {}).get("every_ms", "?")
    return [
        (
            f"for_each over {items} items, max_parallel {parallel}{_median(r)}: pipeline / baseline",
            f"{num(r.get('fanout_pipeline_s'), digits=2)} / "
            f"{num(r.get('fanout_baseline_s'), digits=2)} s ({_ratio(r.get('fanout_pipeline_s'), r.get('fanout_baseline_s'))})",
            "",
            "",
        ),
        (
            "  history events, all runs / baseline",
            f"{_count(r.get('fanout_events'))} in {_count(r.get('fanout_runs'))} run(s) / "
            f"{_count(r.get('fanout_baseline_events'))} "
            f"({_ratio(r.get('fanout_events'), r.get('fanout_baseline_events'))})",
            "",
            "",
        ),
        (
            "  largest run's events; continue-as-new suggested at",
            f"{_count(r.get('fanout_largest_run_events'))}; "
            + (
                f"event {suggested:,}"
                if suggested is not None
                else f"never (server default {_count(r.get('fanout_events_suggest'))})"
            ),
            *verdict(r, "fanout_largest_run_events"),
        ),
        (
            "  largest run's input (its items, or the state carried on)",
            num(r.get("fanout_largest_input_kib"), " KiB"),
            *verdict(r, "fanout_largest_input_kib"),
        ),
        (
            "  worker CPU, pipeline / baseline",
            f"{num(worker[0], digits=2)} / {num(worker[1], digits=2)} s",
            "",
            "",
        ),
        (
            "  replaying the largest run, CPU, pipeline / baseline",
            f"{num(r.get('fanout_replay_s'), digits=2)} / "
            f"{num(r.get('fanout_baseline_replay_s'), digits=2)} s",
            *verdict(r, "fanout_replay_s"),
        ),
        (
            "  status query on the closed run (replayed by the worker)",
            _query(query_s, r.get("fanout_status_query_error")),
            "",
            "",
        ),
        *_loop(r, "repeat", "repeat"),
        *_loop(r, "repeat_every", f"repeat every {every} ms"),
    ]
