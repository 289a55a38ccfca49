"""`stepgate_gates_open`: how many runs wait at an open gate, by pipeline and by the priority of
their most urgent open gate, counted by Temporal visibility when /metrics is scraped.

Why here and not in the worker: a gauge set from workflow code is one run's value, overwritten by
the next run's on the same worker and lost with the worker; the SDK's meter has no up-down
counter, and counting opened and closed gates on each worker drifts once a worker restarts (the
runs it held are replayed elsewhere, where the replay-safe meter counts nothing). Visibility is
the one place that knows every open run of every worker: each run keeps `StepgatePriority` (the
priority of its most urgent open gate, unset when none is open) beside `StepgatePipeline`, so a
count query per (priority, pipeline) is exact whatever the workers do. Visibility counts runs,
not gates: a run waiting at several gates counts once, under its most urgent one. A run of a build
from before `StepgatePriority` has who may decide it (`StepgateAwaiting`) but no priority: it
counts under `unknown`.

What a scrape costs: at most MAX_QUERIES count queries, a few at a time, once per FRESH_S
whatever the scrape rate; a priority no run waits at costs one query. The pipelines that did not
fit the budget, and every name outside the API's catalog, count together as `other`, so totals
stay exact and labels bounded. A scrape waits WAIT_S at most for a refresh, then serves the last
value (its age is `stepgate_gates_open_age_seconds`); a refresh that fails or outlasts REFRESH_S
counts in `stepgate_gates_open_refresh_errors_total`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

import structlog

from api.catalog_live import LiveCatalog
from api.metrics import label_text, number_text
from api.temporal import TemporalLink
from workflows.contract import (
    GOVERNED_PIPELINE,
    SA_AWAITING,
    SA_PIPELINE,
    SA_PRIORITY,
    STEPGATE_WORKFLOW_TYPES,
)
from workflows.language.types import PRIORITIES
from workflows.query_text import in_list, quote

log = structlog.get_logger("stepgate.api.metrics")

GAUGE = "stepgate_gates_open"
AGE = "stepgate_gates_open_age_seconds"
ERRORS = "stepgate_gates_open_refresh_errors_total"
OTHER = "other"
UNKNOWN = "unknown"
LEVELS: tuple[str, ...] = (*PRIORITIES, UNKNOWN)
FRESH_S = 15.0
WAIT_S = 2.0
REFRESH_S = 20.0
MAX_QUERIES = 100
CONCURRENCY = 4
QUERY_TIMEOUT = timedelta(seconds=5)

Count = Callable[[str], Awaitable[int]]
Counts = dict[tuple[str, str], int]

_OPEN = (
    f"WorkflowType IN {in_list(sorted(STEPGATE_WORKFLOW_TYPES))} AND ExecutionStatus = 'Running'"
)


def query(priority: str, pipeline: str | None = None) -> str:
    """The count query of running Stepgate runs whose most urgent open gate has `priority`
    (`unknown`: an open gate but no priority), and whose pipeline is `pipeline` if given."""
    if priority == UNKNOWN:
        text = f"{_OPEN} AND {SA_AWAITING.name} IS NOT NULL AND {SA_PRIORITY.name} IS NULL"
    else:
        text = f"{_OPEN} AND {SA_PRIORITY.name} = {quote(priority)}"
    return text + (f" AND {SA_PIPELINE.name} = {quote(pipeline)}" if pipeline else "")


async def count_open(count: Count, pipelines: Iterable[str], budget: int = MAX_QUERIES) -> Counts:
    """Runs waiting at a gate by (pipeline, priority): a total per priority, then each of
    `pipelines` at that priority, a few at a time, until the counted ones make up the total (the
    rest are 0, not asked) or the budget of queries runs out (the rest are in `other`)."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(text: str) -> int:
        async with gate:
            return await count(text)

    totals = dict(zip(LEVELS, await asyncio.gather(*map(one, map(query, LEVELS))), strict=True))
    budget -= len(LEVELS)
    names = sorted(set(pipelines) - {OTHER})
    counts: Counts = {}
    for priority in LEVELS:
        left, at = totals[priority], 0
        while at < len(names) and left > 0 and budget > 0:
            batch = names[at : at + min(CONCURRENCY, budget)]
            at, budget = at + len(batch), budget - len(batch)
            found = await asyncio.gather(*(one(query(priority, n)) for n in batch))
            for name, n in zip(batch, found, strict=True):
                counts[(name, priority)] = n
                left -= n
        if left <= 0:
            counts.update({(name, priority): 0 for name in names[at:]})
        counts[(OTHER, priority)] = max(left, 0)
    return counts


def visibility_count(temporal: TemporalLink) -> Count:
    """Counts with the API's Temporal client (not connected yet: the refresh fails, counted)."""

    async def count(text: str) -> int:
        found = await temporal.client.count_workflows(text, rpc_timeout=QUERY_TIMEOUT)
        return found.count

    return count


def catalog_pipelines(catalog: LiveCatalog) -> Callable[[], list[str]]:
    """The pipeline labels: the catalog's names as they are now, and governed runs'."""
    return lambda: [*catalog.current.names(), GOVERNED_PIPELINE]


class GatesOpen:
    """The last counts, refreshed on a scrape once they are older than FRESH_S; one refresh at
    a time, shared by concurrent scrapes, never awaited longer than WAIT_S by one."""

    def __init__(self, count: Count, pipelines: Callable[[], Iterable[str]]) -> None:
        self._count = count
        self._pipelines = pipelines
        self._counts: Counts | None = None
        self._at = 0.0
        self._errors = 0
        self._task: asyncio.Task[None] | None = None

    async def render(self) -> str:
        """Prometheus text of the gauge, its age and the refresh errors."""
        if self._counts is None or time.monotonic() - self._at > FRESH_S:
            if self._task is None:
                self._task = asyncio.create_task(self._refresh())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), WAIT_S)
        out = [
            f"# HELP {GAUGE} Runs waiting at an open gate, by pipeline and the priority of their "
            "most urgent open gate (Temporal visibility).",
            f"# TYPE {GAUGE} gauge",
        ]
        for (pipeline, priority), n in sorted((self._counts or {}).items()):
            labels = label_text((("pipeline", pipeline), ("priority", priority)))
            out.append(f"{GAUGE}{{{labels}}} {n}")
        out += [f"# HELP {AGE} Seconds since {GAUGE} was counted.", f"# TYPE {AGE} gauge"]
        if self._counts is not None:
            out.append(f"{AGE} {number_text(round(time.monotonic() - self._at, 3))}")
        out += [
            f"# HELP {ERRORS} Refreshes of {GAUGE} that failed or took too long.",
            f"# TYPE {ERRORS} counter",
            f"{ERRORS} {self._errors}",
        ]
        return "\n".join(out) + "\n"

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(REFRESH_S):
                counts = await count_open(self._count, self._pipelines())
            self._counts, self._at = counts, time.monotonic()
        except Exception as err:  # any failure keeps the last value and is counted
            self._errors += 1
            log.warning("gates open not counted", error=str(err) or type(err).__name__)
        finally:
            self._task = None

    async def close(self) -> None:
        """Stop a refresh under way (the app is stopping)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
