"""The dynamic bench section's runs and history readings, on real dev servers, at a small size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import default_registry
from activities.config import Settings
from bench import histories, report_dynamic
from bench.baseline import NOOP
from bench.dynamic_runs import ECHO, Runner
from bench.stack import Stack
from bench.worker import with_baseline
from tests.conftest import SMALL_HISTORY_EVENTS
from tests.support.procs import Processes
from tests.support.util import eventually
from worker import build_worker
from workflows.pipeline import PipelineWorkflow

RUN_LIMIT_S = 120.0


@asynccontextmanager
async def runner_on(
    client: Client, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Runner, Stack]]:
    """A bench worker (Stepgate plus the baselines) on `client`'s server and the runner using it."""
    local = settings.model_copy(
        update={"temporal_address": client.service_client.config.target_host}
    )
    stack = Stack(
        procs=Processes(tmp_path),
        workdir=tmp_path,
        address=local.temporal_address,
        client=client,
        env={},
        task_queue=local.stepgate_task_queue,
    )
    async with build_worker(with_baseline(client), local, default_registry(entry_points=False)):
        yield Runner(stack, RUN_LIMIT_S), stack


@pytest.fixture
async def bench(client: Client, settings: Settings, tmp_path: Path) -> AsyncIterator[Runner]:
    async with runner_on(client, settings, tmp_path) as (runner, _):
        yield runner


@pytest.fixture
async def small_bench(
    small_history_env: WorkflowEnvironment, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[Runner, Stack]]:
    async with runner_on(small_history_env.client, settings, tmp_path) as pair:
        yield pair


async def test_run_chain_counts_every_run_of_a_fan_out_that_continued_as_new(
    small_bench: tuple[Runner, Stack],
) -> None:
    """The chain walked from the first run holds every run the status counts, with the events
    visibility reports for each, and the server's suggestion in every run that continued."""
    runner, stack = small_bench
    first = await runner.fanout_pipeline(60, 4, "chain")
    workflow_id = runner.id("chain")
    chain = await histories.run_chain(stack.client, workflow_id, first)
    status = await stack.client.get_workflow_handle(workflow_id).query(PipelineWorkflow.status)

    assert len(chain) == status.continued + 1 >= 2
    assert [r.continued_to for r in chain] == [r.run_id for r in chain[1:]] + [None]
    assert all(r.suggested_at is not None for r in chain[:-1])
    assert all(r.suggested_at >= SMALL_HISTORY_EVENTS for r in chain if r.suggested_at)
    assert all(later.input_bytes > chain[0].input_bytes for later in chain[1:])

    async def listed() -> dict[str, int]:
        query = f"WorkflowId = '{workflow_id}'"
        return {w.run_id: w.history_length async for w in stack.client.list_workflows(query)}

    expected = {r.run_id: r.events for r in chain}
    await eventually(listed, ok=lambda seen: seen == expected, what="visibility agrees")


async def test_loops_record_one_call_per_iteration_on_both_sides(bench: Runner) -> None:
    """The repeat pipeline and the hand-written loop each stop after N calls, so N - 1 gaps."""
    pipeline = await bench.repeat_pipeline(4, 0, "loop-p")
    baseline = await bench.repeat_baseline(4, 0, "loop-b")

    for history, activity in ((pipeline, ECHO), (baseline, NOOP)):
        gaps = histories.gaps_ms(histories.scheduled_ms(history, activity))
        assert len(gaps) == 3 and all(g >= 0 for g in gaps), gaps


async def test_fan_out_baseline_runs_every_item_in_one_run(bench: Runner) -> None:
    """The hand-written fan-out returns every item in order (checked by the runner) in one run."""
    first = await bench.fanout_baseline(30, 4, "fan-b")
    chain = await histories.run_chain(bench.stack.client, bench.id("fan-b"), first)

    assert [r.continued_to for r in chain] == [None]
    assert chain[0].events > 3 * 30  # at least scheduled, started and completed per call


def test_rows_show_dashes_when_the_section_did_not_run() -> None:
    """Without figures no result cell shows a number and no verdict is claimed."""
    rows = report_dynamic.rows({})

    assert not [row[1] for row in rows if any(ch.isdigit() for ch in row[1])]
    assert {row[3] for row in rows} <= {"", "n/a"}


def test_rows_flag_a_run_over_temporal_history_limit() -> None:
    """A largest run at 51,201 events misses the hard limit; one at 51,200 does not."""

    def verdict(events: int) -> str:
        rows = report_dynamic.rows({"fanout_largest_run_events": events})
        return next(r[3] for r in rows if r[0].startswith("  largest run's events"))

    assert (verdict(51_200), verdict(51_201)) == ("PASS", "MISS")
