"""Workflow metrics are replay-safe: replaying every recorded history, with decisions, refusals,
lapsed votes, timeouts, escalations and reminders in them, records no Stepgate metric."""

from __future__ import annotations

import functools
import json

import httpx
from temporalio.client import WorkflowHistory
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Replayer

from tests.support import prom
from tests.support.procs import free_port
from tests.test_replay import HISTORIES
from workflows import metrics as workflow_metrics
from workflows.client import make_data_converter
from workflows.governed import GovernedWorkflow
from workflows.pipeline import PipelineWorkflow


@functools.cache
def replay_runtime() -> tuple[Runtime, str]:
    address = f"127.0.0.1:{free_port()}"
    config = PrometheusConfig(bind_address=address, counters_total_suffix=False)
    return Runtime(telemetry=TelemetryConfig(metrics=config)), address


async def scrape(address: str) -> dict[str, prom.Family]:
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://{address}/metrics")
    assert r.status_code == 200
    return prom.parse(r.text)


async def test_replaying_every_history_records_no_stepgate_metric() -> None:
    """The replayer's runtime serves metrics (a control counter shows up), yet replaying every
    recorded history, whose runs decided, refused, timed out and escalated gates, leaves every
    stepgate_* series out: a run a worker takes back counts nothing a second time."""
    runtime, address = replay_runtime()
    workflow_metrics.name_pipelines(["gated", "approval_demo"])
    replayer = Replayer(
        workflows=[PipelineWorkflow, GovernedWorkflow],
        data_converter=make_data_converter(),
        runtime=runtime,
    )
    try:
        for path in HISTORIES:
            history = WorkflowHistory.from_json(path.stem, path.read_text())
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
    finally:
        workflow_metrics.name_pipelines([])
    runtime.metric_meter.create_counter("stepgate_control_total").add(1)
    families = await scrape(address)
    assert prom.value(families, "stepgate_control_total") == 1, "the scrape sees the runtime"
    recorded = {
        sample.name
        for family in families.values()
        if family.name.startswith("stepgate_") and family.name != "stepgate_control_total"
        for sample in family.samples
        if sample.value
    }
    assert recorded == set(), recorded
    kinds = {e["eventType"] for p in HISTORIES for e in json.loads(p.read_text())["events"]}
    assert {f"EVENT_TYPE_WORKFLOW_EXECUTION_{k}" for k in ("UPDATE_ACCEPTED", "SIGNALED")} <= kinds
    assert {"EVENT_TYPE_TIMER_FIRED", "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"} <= kinds
