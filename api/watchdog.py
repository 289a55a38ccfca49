"""A cancelled run always ends within seconds. The cancel signal and Temporal's cancel request
reach a run through its workflow task; a run whose task keeps failing, or that no worker takes,
never acts on them. Such a run is terminated once CANCEL_GRACE_S has passed (a run that is
winding down on its own, compensating, is left to finish)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

log = structlog.get_logger("stepgate.api.cancel")

# How long a cancelled run has to act on it before it counts as stuck.
CANCEL_GRACE_S = 10.0
# Cancels watched at once by one API process; past it a cancel is still sent, unwatched.
MAX_WATCHED = 1_000


def stuck_reason(
    status: WorkflowExecutionStatus | None,
    task_state: int | None,
    attempt: int,
    scheduled: datetime | None,
    now: datetime,
    grace: timedelta,
) -> str | None:
    """Why a run that was asked to cancel `grace` ago cannot act on it, or None: it closed, or
    its workflow task runs (it is winding down by itself)."""
    if status != WorkflowExecutionStatus.RUNNING or task_state is None:
        return None
    if attempt > 1:
        return f"its workflow task has failed {attempt - 1} time(s) in a row"
    if task_state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED:
        if scheduled is not None and now - scheduled >= grace:
            return "no worker has taken its workflow task"
    return None


class CancelWatch:
    """Cancels this API process watches, each until its run closes or is terminated."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, client: Client, workflow_id: str, actor: str) -> None:
        if len(self._tasks) >= MAX_WATCHED:
            log.warning("cancel not watched: too many at once", workflow_id=workflow_id)
            return
        task = asyncio.create_task(self._watch(client, workflow_id, actor))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, client: Client, workflow_id: str, actor: str) -> None:
        await asyncio.sleep(CANCEL_GRACE_S)
        handle = client.get_workflow_handle(workflow_id)
        try:
            desc = await handle.describe()
            pending = desc.raw_description.pending_workflow_task
            has_task = desc.raw_description.HasField("pending_workflow_task")
            scheduled = (
                pending.scheduled_time.ToDatetime(tzinfo=UTC)
                if has_task and pending.HasField("scheduled_time")
                else None
            )
            reason = stuck_reason(
                desc.status,
                pending.state if has_task else None,
                pending.attempt if has_task else 0,
                scheduled,
                datetime.now(UTC),
                timedelta(seconds=CANCEL_GRACE_S),
            )
            if reason is None:
                return
            await handle.terminate(reason=f"cancelled by {actor}, but {reason}: terminated")
            log.warning("stuck run terminated on cancel", workflow_id=workflow_id, why=reason)
        except RPCError as err:  # closed meanwhile, or Temporal unreachable: nothing to do now
            log.info("cancel watch ended", workflow_id=workflow_id, error=str(err))
