"""The hand-written gated baseline that bench.approvals measures Stepgate's approvals against:
it must park where an inbox finds it, take an approval, and finish the job, or the floor it
reports would be of a different job."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities import default_registry
from activities.config import Settings
from bench.baseline import APPROVE, AWAITING, STEPS
from bench.worker import with_baseline
from tests.support.util import eventually
from worker import build_worker
from workflows.contract import SA_AWAITING


async def test_gated_baseline_parks_listed_takes_one_approval_and_finishes(
    client: Client, settings: Settings
) -> None:
    workflow_id = f"gated-baseline-{uuid.uuid4().hex[:8]}"
    async with build_worker(with_baseline(client), settings, default_registry(entry_points=False)):
        handle = await client.start_workflow(
            "GatedBaselineWorkflow",
            {"value": workflow_id},
            id=workflow_id,
            task_queue=settings.stepgate_task_queue,
        )
        listed = f"{SA_AWAITING.name} = '{AWAITING}' AND WorkflowId = '{workflow_id}'"

        async def parked() -> int:
            return (await client.count_workflows(listed)).count

        await eventually(parked, ok=lambda n: n == 1, what="the parked baseline in visibility")
        assert await handle.execute_update(APPROVE, "olga") == "olga"
        with pytest.raises(RPCError) as late:
            await handle.execute_update(APPROVE, "vic")  # the approval finished the job
        assert late.value.status == RPCStatusCode.NOT_FOUND
        assert await handle.result() == {"value": workflow_id}
        history = await handle.fetch_history()
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    assert len(markers) == STEPS  # every call ran once, as a local activity
    await eventually(parked, ok=lambda n: n == 0, what="the approved baseline out of the inbox")
