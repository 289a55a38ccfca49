"""Recurring runs: Temporal Schedules that start PipelineWorkflow with a validated snapshot."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleListDescription,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode

from api.deps import CallerDep, CatalogDep, ClientDep, OperatorDep, RegistryDep, SettingsDep
from api.errors import ApiError, from_rpc
from api.guards import OffloadDep
from api.runs import build_input, details, start_attributes, summary
from api.schemas.common import ERRORS, ScheduleIdPath
from api.schemas.schedules import ScheduleCreate, ScheduleDeleted, ScheduleList, SchedulePublic
from workflows.contract import WORKFLOW_TYPE
from workflows.durations import parse_duration
from workflows.pipeline import PipelineWorkflow

router = APIRouter(prefix="/schedules", tags=["schedules"], responses=ERRORS)

# Schedule memo keys: the server rewrites cron into calendars, so the request's own words are kept.
MEMO_PIPELINE = "stepgate_pipeline"
MEMO_CRON = "stepgate_cron"
MEMO_INTERVAL = "stepgate_interval"
LIST_LIMIT = 500


@router.post("", response_model=SchedulePublic, status_code=status.HTTP_201_CREATED)
async def create_schedule(
    caller: OperatorDep,
    body: ScheduleCreate,
    client: ClientDep,
    catalog: CatalogDep,
    registry: RegistryDep,
    settings: SettingsDep,
    offload: OffloadDep,
) -> SchedulePublic:
    """Validate now, then let Temporal start a run on every tick with this snapshot."""
    inp = await offload.run(
        build_input,
        body.definition,
        body.input,
        body.approval_mode,
        caller,
        catalog,
        registry,
        settings,
    )
    name = inp.definition.name
    schedule_id = body.schedule_id or f"{name}-{uuid.uuid4().hex[:12]}"
    spec = (
        ScheduleSpec(cron_expressions=[body.cron])
        if body.cron
        else ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=parse_duration(body.interval or ""))]
        )
    )
    action = ScheduleActionStartWorkflow(
        PipelineWorkflow.run,
        inp,
        # Temporal appends the tick's timestamp, so every run has its own id.
        id=f"{schedule_id}-run",
        task_queue=settings.stepgate_task_queue,
        typed_search_attributes=start_attributes(inp),
        static_summary=summary(inp, schedule_id),
        static_details=details(inp),
    )
    memo = {MEMO_PIPELINE: name, MEMO_CRON: body.cron, MEMO_INTERVAL: body.interval}
    try:
        await client.create_schedule(schedule_id, Schedule(action=action, spec=spec), memo=memo)
    except ScheduleAlreadyRunningError:
        raise ApiError(409, "schedule_exists", f"schedule {schedule_id!r} already exists") from None
    except RPCError as err:
        raise from_rpc(err) from None
    return SchedulePublic(
        schedule_id=schedule_id, pipeline=name, cron=body.cron, interval=body.interval
    )


async def _public(entry: ScheduleListDescription) -> SchedulePublic:
    memo = await entry.memo()
    return SchedulePublic(
        schedule_id=entry.id,
        pipeline=memo.get(MEMO_PIPELINE),
        cron=memo.get(MEMO_CRON),
        interval=memo.get(MEMO_INTERVAL),
        paused=entry.schedule.state.paused if entry.schedule else False,
        next_action_times=list(entry.info.next_action_times) if entry.info else [],
    )


@router.get("", response_model=ScheduleList)
async def list_schedules(_: CallerDep, client: ClientDep) -> ScheduleList:
    """Schedules that start Stepgate pipelines."""
    items = []
    try:
        async for entry in await client.list_schedules():
            workflow = getattr(entry.schedule.action, "workflow", None) if entry.schedule else None
            if workflow == WORKFLOW_TYPE:
                items.append(await _public(entry))
            if len(items) >= LIST_LIMIT:
                break
    except RPCError as err:
        raise from_rpc(err) from None
    return ScheduleList(items=items)


@router.delete("/{schedule_id}", response_model=ScheduleDeleted)
async def delete_schedule(
    _: OperatorDep, client: ClientDep, schedule_id: ScheduleIdPath
) -> ScheduleDeleted:
    """Delete a schedule; runs it already started keep going."""
    try:
        await client.get_schedule_handle(schedule_id).delete()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # A deleted schedule's backing workflow reads as "already completed": still gone.
            raise ApiError(404, "not_found", f"no schedule {schedule_id!r}") from None
        raise from_rpc(err) from None
    return ScheduleDeleted(schedule_id=schedule_id)
