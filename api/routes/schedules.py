"""Recurring runs: Temporal Schedules that start PipelineWorkflow with a validated snapshot.

Each schedule records its owner and the permissions its start needs; the run re-checks them when
the schedule fires. Schedules without Stepgate's memo marker are not Stepgate's: never listed,
never deleted here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleListDescription,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.access import SCHEDULE, SCHEDULE_ANY
from api.auth import Caller, require
from api.deps import (
    CallerDep,
    CatalogDep,
    ClientDep,
    ParseDep,
    ReaderDep,
    RegistryDep,
    SettingsDep,
    needs,
)
from api.errors import ApiError, from_rpc
from api.guards import StrictJsonRoute
from api.runs import build_input, details, start_attributes, start_needs, summary
from api.schemas.common import ERRORS, ScheduleIdPath
from api.schemas.schedules import (
    NEXT_ACTION_TIMES,
    ScheduleCreate,
    ScheduleDeleted,
    ScheduleList,
    SchedulePublic,
)
from workflows.contract import WORKFLOW_TYPE
from workflows.language.durations import parse_duration
from workflows.models import StartOrigin
from workflows.pipeline import PipelineWorkflow

router = APIRouter(
    prefix="/schedules", tags=["schedules"], responses=ERRORS, route_class=StrictJsonRoute
)

# Schedule memo keys: the server rewrites cron into calendars, so the request's own words are kept.
MEMO_PIPELINE = "stepgate_pipeline"
MEMO_CRON = "stepgate_cron"
MEMO_INTERVAL = "stepgate_interval"
# Marks a schedule Stepgate made (the memo format's version), whose owner and needs it records.
MEMO_MARKER = "stepgate_schedule"
MEMO_OWNER = "stepgate_owner"
MEMO_NEEDS = "stepgate_needs"
MARKER_VERSION = 1
LIST_LIMIT = 500

SchedulerDep = Annotated[Caller, Depends(needs(SCHEDULE))]


@router.post("", response_model=SchedulePublic, status_code=status.HTTP_201_CREATED)
async def create_schedule(
    caller: SchedulerDep,
    body: ScheduleCreate,
    client: ClientDep,
    catalog: CatalogDep,
    registry: RegistryDep,
    settings: SettingsDep,
    parse: ParseDep,
) -> SchedulePublic:
    """Validate now, then let Temporal start a run on every tick with this snapshot. Needs
    `schedule` and what the same start would need; each run checks its owner still holds them."""
    inp = await parse.run(
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
    # Each run checks, when it starts, that the owner still holds all of these.
    origin = StartOrigin(
        schedule_id=schedule_id,
        owner=caller.principal,
        needs=[*start_needs(body.definition, body.approval_mode), SCHEDULE],
    )
    inp = inp.model_copy(update={"origin": origin})
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
    memo = {
        MEMO_MARKER: MARKER_VERSION,
        MEMO_OWNER: caller.principal,
        MEMO_NEEDS: origin.needs,
        MEMO_PIPELINE: name,
        MEMO_CRON: body.cron,
        MEMO_INTERVAL: body.interval,
    }
    try:
        handle = await client.create_schedule(
            schedule_id, Schedule(action=action, spec=spec), memo=memo
        )
        # Temporal computes the coming ticks from its own reading of the spec: show those.
        desc = await handle.describe()
    except ScheduleAlreadyRunningError:
        raise ApiError(409, "schedule_exists", f"schedule {schedule_id!r} already exists") from None
    except RPCError as err:
        raise from_rpc(err) from None
    return SchedulePublic(
        schedule_id=schedule_id,
        owner=caller.principal,
        pipeline=name,
        cron=body.cron,
        interval=body.interval,
        next_action_times=next_times(desc.info.next_action_times),
    )


def next_times(times: Sequence[datetime]) -> list[datetime]:
    """Temporal's coming ticks, at most NEXT_ACTION_TIMES of them, in UTC."""
    return [t.astimezone(UTC) for t in times[:NEXT_ACTION_TIMES]]


async def is_stepgate(entry: ScheduleListDescription | ScheduleDescription) -> bool:
    """Made by Stepgate: its memo carries the marker and it starts Stepgate's workflow."""
    workflow = getattr(entry.schedule.action, "workflow", None) if entry.schedule else None
    if workflow != WORKFLOW_TYPE:
        return False
    try:
        marker: object = await entry.memo_value(MEMO_MARKER, None)
    except Exception:  # a memo this converter cannot read (another codec) is not ours either
        return False
    return marker == MARKER_VERSION


async def _public(entry: ScheduleListDescription) -> SchedulePublic:
    memo = await entry.memo()
    return SchedulePublic(
        schedule_id=entry.id,
        owner=memo.get(MEMO_OWNER),
        pipeline=memo.get(MEMO_PIPELINE),
        cron=memo.get(MEMO_CRON),
        interval=memo.get(MEMO_INTERVAL),
        paused=entry.schedule.state.paused if entry.schedule else False,
        next_action_times=next_times(entry.info.next_action_times) if entry.info else [],
    )


@router.get("", response_model=ScheduleList)
async def list_schedules(_: ReaderDep, client: ClientDep) -> ScheduleList:
    """Schedules Stepgate made, whoever owns them."""
    items = []
    try:
        async for entry in await client.list_schedules():
            if await is_stepgate(entry):
                items.append(await _public(entry))
            if len(items) >= LIST_LIMIT:
                break
    except RPCError as err:
        raise from_rpc(err) from None
    return ScheduleList(items=items)


@router.delete("/{schedule_id}", response_model=ScheduleDeleted)
async def delete_schedule(
    caller: CallerDep, client: ClientDep, schedule_id: ScheduleIdPath
) -> ScheduleDeleted:
    """Delete a schedule (its owner with `schedule`, anyone with `schedule_any`); runs it
    already started keep going. Schedules Stepgate did not make are 404."""
    if not caller.can(SCHEDULE_ANY):
        require(caller, SCHEDULE, doing="deleting a schedule")
    handle = client.get_schedule_handle(schedule_id)
    try:
        desc = await handle.describe()
        if not await is_stepgate(desc):
            raise ApiError(404, "not_found", f"no schedule {schedule_id!r}")
        owner = await desc.memo_value(MEMO_OWNER, None)
        if owner != caller.principal:
            require(caller, SCHEDULE_ANY, doing="deleting another principal's schedule")
        await handle.delete()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            # A deleted schedule's backing workflow reads as "already completed": still gone.
            raise ApiError(404, "not_found", f"no schedule {schedule_id!r}") from None
        raise from_rpc(err) from None
    return ScheduleDeleted(schedule_id=schedule_id)
