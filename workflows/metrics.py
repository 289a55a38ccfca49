"""Stepgate's own metrics from workflow code, through the SDK's replay-safe meter: a workflow's
meter records nothing while the workflow replays, so a run taken back after an eviction does not
count its decisions twice, and recording adds no command to the history.

Labels are bounded sets only: a decision's action, an outcome, a pipeline name the worker's
catalog holds (any other, an inline definition's, is `other`). Never a workflow id, a principal
or free text. The worker serves them with the SDK's own (`temporal_*`) at
STEPGATE_WORKER_METRICS_ADDRESS (workflows.client.make_runtime)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from temporalio import workflow

from workflows.rules.records import GateRecord

GATE_DECISION = "stepgate_gate_decision_seconds"
DECISIONS = "stepgate_decisions_total"
# A pipeline name not in the worker's catalog when it started.
OTHER = "other"
# Seconds from a gate's opening to the decision that closed it: minutes to days.
GATE_DECISION_BUCKETS: tuple[float, ...] = (
    1, 5, 30, 60, 300, 900, 3_600, 4 * 3_600, 86_400, 3 * 86_400, 7 * 86_400,
)  # fmt: skip

_known: frozenset[str] = frozenset()


def name_pipelines(names: Iterable[str]) -> None:
    """The pipeline names metrics may carry as labels (the worker's catalog, read at start)."""
    global _known
    _known = frozenset(names)


def pipeline_label(name: str) -> str:
    return name if name in _known else OTHER


def decision(action: str, accepted: bool) -> None:
    """One decision a run took (`accepted`) or refused."""
    workflow.metric_meter().create_counter(
        DECISIONS, "decisions sent to gates, by action and whether the gate took them"
    ).add(1, {"action": action, "outcome": "accepted" if accepted else "refused"})


def gate_decided(pipeline: str, outcome: str, opened_at: datetime, decided_at: datetime) -> None:
    """A gate closed by a decision: how long it was open."""
    wait = max((decided_at - opened_at).total_seconds(), 0.0)
    workflow.metric_meter().create_histogram_float(
        GATE_DECISION, "seconds from a gate's opening to the decision that closed it", "s"
    ).record(wait, {"pipeline": pipeline_label(pipeline), "outcome": outcome})


def decided(pipeline: str, action: str, gate: GateRecord | None) -> None:
    """A decision's fate (`gate`: the gate that took it, None: refused), and the gate's wait
    when this decision closed it."""
    decision(action, gate is not None)
    if gate is not None and gate.outcome is not None and gate.decided_at is not None:
        gate_decided(pipeline, gate.outcome, gate.opened_at, gate.decided_at)
