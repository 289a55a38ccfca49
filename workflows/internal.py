"""Stepgate's own activities as workflow code calls them: the check of a patch or a child's
input (local), the check of a plan, the owner check of a scheduled run, audit archives, and a
for_each list read back from the artifact store."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        ARCHIVE_AUDIT_ACTIVITY,
        AUTHORIZE_ACTIVITY,
        CHECK_ACTIVITY,
        LOAD_LIST_ACTIVITY,
        VALIDATE_PLAN_ACTIVITY,
        AuditChunk,
        AuditChunkStored,
        AuthorizeCall,
        AuthorizeResult,
        CheckCall,
        CheckResult,
        ListCall,
        ListResult,
        PlanCall,
        PlanResult,
    )
    from workflows.language.limits import MAX_LOADED_LIST_BYTES
    from workflows.models import StartOrigin
    from workflows.retries import (
        ARCHIVE_RETRY,
        ARCHIVE_TIMEOUT,
        AUTHORIZE_RETRY,
        AUTHORIZE_TIMEOUT,
        CHECK_RETRY,
        CHECK_TIMEOUT,
        LOAD_LIST_RETRY,
        LOAD_LIST_TIMEOUT,
        PLAN_TIMEOUT,
    )
    from workflows.rules.units import CheckPlan, LoadList


async def validate_plan(plan: CheckPlan) -> PlanResult:
    result: PlanResult = await workflow.execute_activity(
        VALIDATE_PLAN_ACTIVITY,
        PlanCall(
            definition=plan.definition,
            allowed_tools=plan.allowed_tools,
            max_steps=plan.max_steps,
            allowed_task_queues=plan.allowed_task_queues,
        ),
        result_type=PlanResult,
        start_to_close_timeout=PLAN_TIMEOUT,
        retry_policy=CHECK_RETRY,
        summary=f"{plan.step}: check the plan",
    )
    return result


async def check(call: CheckCall, unit: str) -> CheckResult:
    """Does a value fit a tool's model or a schema (`unit`: the step or gate it is for)."""
    result: CheckResult = await workflow.execute_local_activity(
        CHECK_ACTIVITY,
        call,
        result_type=CheckResult,
        start_to_close_timeout=CHECK_TIMEOUT,
        retry_policy=CHECK_RETRY,
        summary=f"{unit}: check the {call.where or 'value'}",
    )
    return result


async def authorize(origin: StartOrigin) -> AuthorizeResult:
    result: AuthorizeResult = await workflow.execute_activity(
        AUTHORIZE_ACTIVITY,
        AuthorizeCall(principal=origin.owner, needs=origin.needs),
        result_type=AuthorizeResult,
        start_to_close_timeout=AUTHORIZE_TIMEOUT,
        retry_policy=AUTHORIZE_RETRY,
        summary=f"may {origin.owner} still start schedule {origin.schedule_id}?",
    )
    return result


async def archive(chunk: AuditChunk) -> AuditChunkStored:
    result: AuditChunkStored = await workflow.execute_activity(
        ARCHIVE_AUDIT_ACTIVITY,
        chunk,
        result_type=AuditChunkStored,
        start_to_close_timeout=ARCHIVE_TIMEOUT,
        retry_policy=ARCHIVE_RETRY,
        summary=f"archive audit {chunk.first_seq}-{chunk.last_seq}",
    )
    return result


async def load_list(load: LoadList) -> ListResult:
    result: ListResult = await workflow.execute_activity(
        LOAD_LIST_ACTIVITY,
        ListCall(artifact=load.artifact, path=load.path, max_bytes=MAX_LOADED_LIST_BYTES),
        result_type=ListResult,
        start_to_close_timeout=LOAD_LIST_TIMEOUT,
        retry_policy=LOAD_LIST_RETRY,
        summary=f"{load.step}: read the for_each list",
    )
    return result
