"""Names other programs depend on (DESIGN.md's contract): states, search attributes, queue."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from activities.config import DEFAULT_TASK_QUEUE
from workflows.rules.states import (
    CLOSED_RUN_STATES,
    TERMINAL_STEP_STATES,
    RunState,
    StepState,
)

TASK_QUEUE = DEFAULT_TASK_QUEUE
WORKFLOW_TYPE = "PipelineWorkflow"
GOVERNED_WORKFLOW_TYPE = "GovernedWorkflow"
# The workflow types the API may act on; any other workflow in the namespace is not Stepgate's.
STEPGATE_WORKFLOW_TYPES = frozenset({WORKFLOW_TYPE, GOVERNED_WORKFLOW_TYPE})
# By name where a caller needs the raw JSON payload (the SDK types only string-named queries).
STATUS_QUERY = "status"

SA_STATE = SearchAttributeKey.for_keyword("StepgateState")
SA_PIPELINE = SearchAttributeKey.for_keyword("StepgatePipeline")
SA_AWAITING = SearchAttributeKey.for_keyword_list("StepgateAwaiting")
SEARCH_ATTRIBUTES = (SA_STATE, SA_PIPELINE, SA_AWAITING)
# Memo key holding a summary of each open gate, so an inbox is one visibility call.
MEMO_GATES = "stepgate_gates"
# Open gates the memo lists at most (the most urgent, then the oldest); how many more are open is
# under MEMO_GATES_MORE, and the run's status lists them all. A run with a thousand per-item gates
# must not rewrite a thousand lines into its history at every vote.
MEMO_GATES_MAX = 50
MEMO_GATES_MORE = "stepgate_gates_more"

# The query that pages through a run's whole audit trail (the status shows the latest entries).
AUDIT_QUERY = "audit"
# A child pipeline run tells its parent which of its gates are open.
CHILD_GATES_SIGNAL = "child_gates"

__all__ = [
    "AUDIT_QUERY",
    "CHILD_GATES_SIGNAL",
    "CLOSED_RUN_STATES",
    "GOVERNED_WORKFLOW_TYPE",
    "MEMO_GATES",
    "MEMO_GATES_MAX",
    "MEMO_GATES_MORE",
    "SA_AWAITING",
    "SA_PIPELINE",
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
