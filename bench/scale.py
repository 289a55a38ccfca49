"""How much work each section does at each BENCH_SCALE, and the targets the figures are held to."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    warmup_pairs: int
    overhead_pairs: int
    throughput_runs: int
    decision_runs: int
    status_idle_requests: int
    status_load_clients: int
    status_load_requests_per_client: int
    cached_runs: int
    parked_runs: int
    inbox_samples: int
    # The dynamic section: `fanout_pairs` for_each runs over `fanout_items` no-op calls,
    # `fanout_parallel` at once, each paired with a hand-written fan-out; repeat loops of
    # `repeat_iterations` calls (pairs of runs, pipeline and baseline), then with a durable
    # wait of `repeat_every_ms` between calls.
    fanout_items: int
    fanout_parallel: int
    fanout_pairs: int
    repeat_iterations: int
    repeat_pairs: int
    repeat_every_ms: int
    repeat_every_iterations: int
    repeat_every_pairs: int
    # The starvation section: decisions timed in each phase (baseline, then each attack).
    starvation_decisions: int
    # Every section is bounded in time as well as in count: a stuck run must not hang the bench.
    section_timeout_s: float


# `quick` has to finish within about a minute and a half on a 2-core machine, server and
# processes included.
QUICK = Scale(
    name="quick",
    warmup_pairs=3,
    overhead_pairs=20,
    throughput_runs=100,
    decision_runs=12,
    status_idle_requests=100,
    status_load_clients=50,
    status_load_requests_per_client=6,
    cached_runs=200,
    parked_runs=200,
    inbox_samples=2,
    fanout_items=200,
    fanout_parallel=50,
    fanout_pairs=1,
    repeat_iterations=50,
    repeat_pairs=2,
    repeat_every_ms=100,
    repeat_every_iterations=3,
    repeat_every_pairs=1,
    starvation_decisions=20,
    section_timeout_s=40.0,
)

FULL = Scale(
    name="full",
    warmup_pairs=10,
    overhead_pairs=200,
    throughput_runs=1_000,
    decision_runs=100,
    status_idle_requests=500,
    status_load_clients=50,
    status_load_requests_per_client=40,
    cached_runs=1_000,
    parked_runs=10_000,
    inbox_samples=10,
    fanout_items=1_000,
    fanout_parallel=50,
    fanout_pairs=3,
    repeat_iterations=50,
    repeat_pairs=10,
    repeat_every_ms=100,
    repeat_every_iterations=20,
    repeat_every_pairs=2,
    starvation_decisions=100,
    section_timeout_s=900.0,
)

SCALES = {s.name: s for s in (QUICK, FULL)}


def scale_from_env() -> Scale:
    name = os.environ.get("BENCH_SCALE", "full").strip().lower() or "full"
    try:
        return SCALES[name]
    except KeyError:
        raise SystemExit(f"BENCH_SCALE={name!r}: expected one of {', '.join(SCALES)}") from None


@dataclass(frozen=True)
class Target:
    """A limit for one figure: at most `limit`, or at least it when `at_least`."""

    key: str
    label: str
    limit: float
    unit: str
    at_least: bool = False

    @property
    def sense(self) -> str:
        return ">=" if self.at_least else "<="

    def check(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        met = value >= self.limit if self.at_least else value <= self.limit
        return "PASS" if met else "MISS"


TARGETS = {
    t.key: t
    for t in (
        Target("overhead_ratio", "interpreter / baseline p50", 1.15, "x"),
        Target("overhead_regular_ratio", "interpreter / baseline p50, regular", 1.15, "x"),
        Target("pipeline_run_ms_p50", "five-step pipeline run p50", 25.0, "ms"),
        Target("step_overhead_ms_p50", "step overhead p50", 15.0, "ms"),
        Target("decision_latency_ms_p50", "decision (update) -> step started p50", 25.0, "ms"),
        Target(
            "decision_latency_signal_ms_p50", "decision (signal) -> step started p50", 25.0, "ms"
        ),
        Target("status_ms_p99_idle", "GET /workflows/{id} p99 idle", 25.0, "ms"),
        Target("status_ms_p99_load", "GET /workflows/{id} p99 under load", 60.0, "ms"),
        Target(
            "starvation_decision_ms_p99", "decision p99 under the 1 MiB body flood", 250.0, "ms"
        ),
        Target("starvation_status_ms_p99", "status p99 under the 1 MiB body flood", 100.0, "ms"),
        Target("throughput_1_ratio", "throughput pipeline / baseline, 1 worker", 0.9, "x", True),
        Target("throughput_2_ratio", "throughput pipeline / baseline, 2 workers", 0.9, "x", True),
        Target("worker_rss_mb_peak", "worker RSS peak with parked runs", 1024.0, "MiB"),
        Target("approve_all_s", "approving every parked run", 60.0, "s"),
        # Temporal fails a run whose history reaches 51,200 events (limit.historyCount.error).
        Target("fanout_largest_run_events", "fan-out's largest run", 51_200, "events"),
        # A run continues as new with its whole state as input, which must fit one payload
        # (limit.blobSize.error, 2 MiB).
        Target("fanout_largest_input_kib", "fan-out's largest run input", 2_048, "KiB"),
        # A worker that lost a run from its cache replays it within one workflow task; one that
        # takes longer than the task's timeout (Temporal's default: 10 s) is timed out and
        # given again, from the start, so the run never moves again.
        Target("fanout_replay_s", "replay of the fan-out's largest run", 10.0, "s"),
    )
}
