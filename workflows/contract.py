"""Names other programs depend on (DESIGN.md's contract): states, search attributes, queue."""

from __future__ import annotations

from enum import StrEnum

from temporalio.common import SearchAttributeKey

from activities.config import DEFAULT_TASK_QUEUE

TASK_QUEUE = DEFAULT_TASK_QUEUE
WORKFLOW_TYPE = "PipelineWorkflow"

SA_STATE = SearchAttributeKey.for_keyword("StepgateState")
SA_PIPELINE = SearchAttributeKey.for_keyword("StepgatePipeline")
SA_AWAITING = SearchAttributeKey.for_keyword_list("StepgateAwaiting")
SEARCH_ATTRIBUTES = (SA_STATE, SA_PIPELINE, SA_AWAITING)


class RunState(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"


TERMINAL_STEP_STATES = frozenset(
    {
        StepState.SUCCEEDED,
        StepState.FAILED,
        StepState.SKIPPED,
        StepState.CANCELLED,
        StepState.COMPENSATED,
    }
)
CLOSED_RUN_STATES = frozenset({RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED})
