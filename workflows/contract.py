"""Names other programs depend on (DESIGN.md's contract): the task queue, workflow types,
queries, signals, search attributes, memo keys, run and step states. The pure names live in
workflows/names.py (the rules read them there); this module adds the queue and the typed
search-attribute keys."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from activities.config import DEFAULT_TASK_QUEUE
from workflows.names import (
    AUDIT_QUERY,
    CHILD_GATES_SIGNAL,
    CLOSED_RUN_STATES,
    GOVERNED_PIPELINE,
    GOVERNED_WORKFLOW_TYPE,
    MEMO_GATES,
    MEMO_GATES_MAX,
    MEMO_GATES_MORE,
    PAGE_QUERY,
    SA_AWAITING_NAME,
    SA_PIPELINE_NAME,
    SA_PRIORITY_NAME,
    SA_STATE_NAME,
    STATUS_QUERY,
    STEPGATE_WORKFLOW_TYPES,
    TERMINAL_STEP_STATES,
    WORKFLOW_TYPE,
    RunState,
    StepState,
)

TASK_QUEUE = DEFAULT_TASK_QUEUE
SA_STATE = SearchAttributeKey.for_keyword(SA_STATE_NAME)
SA_PIPELINE = SearchAttributeKey.for_keyword(SA_PIPELINE_NAME)
SA_AWAITING = SearchAttributeKey.for_keyword_list(SA_AWAITING_NAME)
SA_PRIORITY = SearchAttributeKey.for_keyword(SA_PRIORITY_NAME)
SEARCH_ATTRIBUTES = (SA_STATE, SA_PIPELINE, SA_AWAITING, SA_PRIORITY)

__all__ = [
    "AUDIT_QUERY",
    "CHILD_GATES_SIGNAL",
    "CLOSED_RUN_STATES",
    "GOVERNED_PIPELINE",
    "GOVERNED_WORKFLOW_TYPE",
    "MEMO_GATES",
    "MEMO_GATES_MAX",
    "MEMO_GATES_MORE",
    "PAGE_QUERY",
    "SA_AWAITING",
    "SA_PIPELINE",
    "SA_PRIORITY",
    "SA_STATE",
    "SEARCH_ATTRIBUTES",
    "STATUS_QUERY",
    "STEPGATE_WORKFLOW_TYPES",
    "TASK_QUEUE",
    "TERMINAL_STEP_STATES",
    "WORKFLOW_TYPE",
    "RunState",
    "StepState",
]
