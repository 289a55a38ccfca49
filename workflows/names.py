"""The names other programs depend on (DESIGN.md's contract) that need nothing from Temporal:
workflow types, queries, signals, memo keys, run and step states. The rules import them from
here; everyone else through workflows/contract.py, which adds the typed search-attribute keys."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

WORKFLOW_TYPE = "PipelineWorkflow"
GOVERNED_WORKFLOW_TYPE = "GovernedWorkflow"
# The workflow types the API may act on; any other workflow in the namespace is not Stepgate's.
STEPGATE_WORKFLOW_TYPES = frozenset({WORKFLOW_TYPE, GOVERNED_WORKFLOW_TYPE})
# What a governed run shows as its pipeline (StepgatePipeline, the status).
GOVERNED_PIPELINE = "governed"
# By name where a caller needs the raw JSON payload (the SDK types only string-named queries).
STATUS_QUERY = "status"
# The query that pages through a run's whole audit trail (the status shows the latest entries).
AUDIT_QUERY = "audit"
# The query that pages through a run's steps, a step's items or iterations, or its gates.
PAGE_QUERY = "page"
# A child pipeline run tells its parent which of its gates are open.
CHILD_GATES_SIGNAL = "child_gates"

# Search attributes (typed keys in workflows/contract.py).
SA_STATE_NAME = "StepgateState"
SA_PIPELINE_NAME = "StepgatePipeline"
SA_AWAITING_NAME = "StepgateAwaiting"
# The priority of the run's most urgent open gate (unset when none is open): what
# `stepgate_gates_open` is counted by.
SA_PRIORITY_NAME = "StepgatePriority"
# Memo key holding a summary of each open gate, so an inbox is one visibility call.
MEMO_GATES = "stepgate_gates"
# Open gates the memo lists at most (the most urgent, then the oldest); how many more are open is
# under MEMO_GATES_MORE (written once it is not 0), and the run's status lists them all. A run
# with a thousand per-item gates must not rewrite a thousand lines into its history at every vote.
MEMO_GATES_MAX = 50
MEMO_GATES_MORE = "stepgate_gates_more"


# What an audit entry records: a decision, a gate's clock, a lifecycle change, how an agent's call
# was decided (`call`), a standing grant made or revoked (`grant`), an approval too old when its
# call would start (`void`: the gate opens again).
AuditKind = Literal[
    "decision",
    "timeout",
    "auto_approve",
    "escalation",
    "reminder",
    "lifecycle",
    "call",
    "grant",
    "void",
]


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
