"""Metrics without a server: how the API counts runs waiting at gates within a budget of
visibility queries and a deadline, and that label sets stay bounded (refusal reasons, pipeline
names)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import pytest

from api import gates_open
from api.decisions import REFUSAL_STATUS
from api.gates_open import LEVELS, OTHER, Count, GatesOpen, count_open, query
from tests.conftest import ROOT
from tests.support import prom
from tests.support.util import eventually
from workflows import metrics as workflow_metrics
from workflows.contract import GOVERNED_PIPELINE

Runs = Counter[tuple[str, str]]
ERRORS = "stepgate_gates_open_refresh_errors_total"


def visibility(runs: Runs, asked: list[str]) -> Count:
    """A stand-in for the count query over runs waiting at a gate, by (pipeline, priority):
    it reads the clauses `query` writes, and notes each query it is asked."""

    async def count(text: str) -> int:
        asked.append(text)
        unknown = "StepgatePriority IS NULL" in text
        level = "unknown" if unknown else re.findall(r"StepgatePriority = '(\w+)'", text)[0]
        named = re.findall(r"StepgatePipeline = '([^']*)'", text)
        return sum(
            n
            for (pipeline, priority), n in runs.items()
            if priority == level and (not named or named[0] == pipeline)
        )

    return count


async def test_counts_each_pipeline_until_the_total_is_made_up() -> None:
    """A priority no run waits at costs one query and shows 0 for every pipeline; at the others
    each catalog pipeline is counted and a pipeline outside the catalog is `other`."""
    runs: Runs = Counter({("a", "high"): 3, ("inline-x", "high"): 1, ("b", "unknown"): 2})
    asked: list[str] = []
    counts = await count_open(visibility(runs, asked), ["a", "b", "c"])
    assert counts[("a", "high")] == 3 and counts[(OTHER, "high")] == 1
    assert counts[("b", "high")] == counts[("c", "high")] == 0
    assert counts[("b", "unknown")] == 2 and counts[(OTHER, "unknown")] == 0
    assert all(counts[(p, "normal")] == 0 for p in ("a", "b", "c", OTHER))
    assert len(asked) == len(LEVELS) + 3 + 3, asked
    assert sum(counts.values()) == sum(runs.values())
    assert {pipeline for pipeline, _ in counts} == {"a", "b", "c", OTHER}


async def test_stops_asking_once_the_total_is_made_up() -> None:
    """Pipelines after those that make up a priority's total are 0 without a query."""
    runs: Runs = Counter({("a", "urgent"): 2})
    asked: list[str] = []
    names = [f"p{n:02}" for n in range(20)]
    counts = await count_open(visibility(runs, asked), ["a", *names])
    assert counts[("a", "urgent")] == 2 and counts[("p19", "urgent")] == 0
    assert len(asked) == len(LEVELS) + gates_open.CONCURRENCY


async def test_what_the_budget_misses_is_counted_as_other() -> None:
    """With more pipelines than queries left, the total stays exact: the pipelines not asked
    are neither labelled nor lost, they are in `other`."""
    names = [f"p{n:02}" for n in range(10)]
    runs: Runs = Counter({(name, "normal"): 1 for name in names})
    asked: list[str] = []
    counts = await count_open(visibility(runs, asked), names, budget=len(LEVELS) + 6)
    assert len(asked) == len(LEVELS) + 6
    assert counts[(OTHER, "normal")] == 4
    assert sum(n for (_, level), n in counts.items() if level == "normal") == 10
    assert ("p09", "normal") not in counts


def test_a_pipeline_name_cannot_change_the_query() -> None:
    """A name with quotes and backslashes stays one string literal of the query."""
    text = query("high", "x' OR StepgatePriority = 'low")
    assert text.endswith("StepgatePipeline = 'x\\' OR StepgatePriority = \\'low'")
    assert text.count("ExecutionStatus = 'Running'") == 1


async def test_a_slow_visibility_serves_the_last_value_and_counts_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A scrape waits WAIT_S at most for a refresh: meanwhile it serves the last counts with
    their age; a refresh that outlasts REFRESH_S is given up and counted as an error."""
    runs: Runs = Counter({("a", "high"): 1})
    hang = asyncio.Event()
    count = visibility(runs, [])

    async def slow(text: str) -> int:
        if hang.is_set():
            await asyncio.Event().wait()
        return await count(text)

    gauge = GatesOpen(slow, lambda: ["a"])
    first = prom.parse(await gauge.render())
    assert prom.value(first, "stepgate_gates_open", pipeline="a", priority="high") == 1
    monkeypatch.setattr(gates_open, "FRESH_S", 0.0)
    monkeypatch.setattr(gates_open, "WAIT_S", 0.05)
    monkeypatch.setattr(gates_open, "REFRESH_S", 0.3)
    hang.set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    stale = prom.parse(await gauge.render())
    assert loop.time() - started < 0.25, "the scrape did not wait for Temporal"
    assert prom.value(stale, "stepgate_gates_open", pipeline="a", priority="high") == 1
    assert len(stale["stepgate_gates_open_age_seconds"].samples) == 1

    async def errors() -> float:
        return prom.value(prom.parse(await gauge.render()), ERRORS)

    assert await eventually(errors, ok=lambda n: n >= 1, within=5, what="error counted") >= 1
    await gauge.close()


async def test_before_any_count_the_gauge_is_absent_not_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When visibility fails from the start there is no gauge sample (not a false 0), and the
    failure is counted."""

    async def down(text: str) -> int:
        raise RuntimeError("Temporal is not reachable yet")

    gauge = GatesOpen(down, lambda: ["a"])
    families = prom.parse(await gauge.render())
    assert families["stepgate_gates_open"].samples == []
    assert prom.value(families, ERRORS) == 1


def test_refusal_reasons_are_the_rules_own_codes() -> None:
    """Every code the rules refuse a decision with is a refusal reason the metrics keep, and
    every reason but `malformed` is one the API maps to an HTTP status."""
    codes: set[str] = set()
    for path in (ROOT / "workflows" / "rules").glob("*.py"):
        text = path.read_text("utf-8")
        codes |= set(re.findall(r'_refusal\(\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'GateRefusal\(\s*code="([a-z_]+)"', text))
    assert codes, "no refusal found: the scan is broken"
    assert codes <= workflow_metrics.REFUSAL_REASONS, codes - workflow_metrics.REFUSAL_REASONS
    assert workflow_metrics.REFUSAL_REASONS - {"malformed"} <= set(REFUSAL_STATUS)


def test_pipeline_labels_are_catalog_names_or_other() -> None:
    """A pipeline outside the worker's catalog (an inline definition's name) is `other`; governed
    runs keep their fixed name."""
    workflow_metrics.name_pipelines(["deploy"])
    try:
        assert workflow_metrics.pipeline_label("deploy") == "deploy"
        assert workflow_metrics.pipeline_label("inline-0f3a") == "other"
        assert workflow_metrics.pipeline_label(GOVERNED_PIPELINE) == GOVERNED_PIPELINE
    finally:
        workflow_metrics.name_pipelines([])
