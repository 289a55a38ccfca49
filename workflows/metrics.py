"""Stepgate's own metrics from workflow code, through the SDK's replay-safe meter: a workflow's
meter records nothing while the workflow replays, so a run taken back after an eviction does not
count its decisions twice, and recording adds no command to the history.

Labels are bounded sets only: a decision's action, a refusal's code, an outcome, a run state, a
pipeline name the worker's catalog holds (any other, an inline definition's, is `other`). Never a
workflow id, a principal or free text. The worker serves them with the SDK's own (`temporal_*`)
at STEPGATE_WORKER_METRICS_ADDRESS (worker.make_runtime). One RunMetrics per run records them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar, get_args

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import tracing
    from workflows.models import Decision, GateRefusal
    from workflows.names import GOVERNED_PIPELINE
    from workflows.rules.governed import GovernedState
    from workflows.rules.records import GateRecord
    from workflows.rules.state import RunData, Trail
    from workflows.rules.turn import CallTool, Invoke
    from workflows.rules.votes import GO_ON, live

GATE_DECISION = "stepgate_gate_decision_seconds"
DECISIONS = "stepgate_decisions_total"
REFUSALS = "stepgate_decision_refusals_total"
LAPSED = "stepgate_gate_votes_lapsed_total"
TIMEOUTS = "stepgate_gate_timeouts_total"
ESCALATIONS = "stepgate_gate_escalations_total"
REMINDERS = "stepgate_gate_reminders_total"
DECISION_TO_STEP = "stepgate_decision_to_step_seconds"
RUNS_STARTED = "stepgate_runs_started_total"
RUNS_FINISHED = "stepgate_runs_finished_total"
# A pipeline name not in the worker's catalog when it started; any unexpected value of a label.
OTHER = "other"
# Seconds from a gate's opening to the decision that closed it: minutes to days.
GATE_DECISION_BUCKETS: tuple[float, ...] = (
    1, 5, 30, 60, 300, 900, 3_600, 4 * 3_600, 86_400, 3 * 86_400, 7 * 86_400,
)  # fmt: skip
# Seconds from a decision to the step it let start: nothing in the way, or a paused run.
DECISION_TO_STEP_BUCKETS: tuple[float, ...] = (
    0.001, 0.01, 0.1, 1, 5, 30, 60, 300, 3_600, 86_400,
)  # fmt: skip
# Why the rules refuse a decision (GateRefusal's codes; the API maps each to an HTTP status), and
# a signal whose payload is no decision at all.
REFUSAL_REASONS = frozenset({*get_args(GateRefusal.model_fields["code"].annotation), "malformed"})
ACTIONS = frozenset({*GO_ON, "reject", "cancel"})
OUTCOMES = ACTIONS | {"timeout"}
# Decided gates waiting for the step they let start, at most (the rest are not measured).
MAX_WAITING = 64

_known: frozenset[str] = frozenset()


def name_pipelines(names: Iterable[str]) -> None:
    """The pipeline names metrics may carry as labels (the worker's catalog, read at start)."""
    global _known
    _known = frozenset(names)


def pipeline_label(name: str) -> str:
    return name if name in _known or name == GOVERNED_PIPELINE else OTHER


def _bounded(value: str | None, allowed: frozenset[str]) -> str:
    return value if value is not None and value in allowed else OTHER


def _count(name: str, text: str, labels: dict[str, str], n: int = 1) -> None:
    workflow.metric_meter().create_counter(name, text).add(n, labels)


def _seconds(name: str, text: str, seconds: float, labels: dict[str, str]) -> None:
    workflow.metric_meter().create_histogram_float(name, text, "s").record(
        max(seconds, 0.0), labels
    )


Lookup = Callable[[str], tuple[Any, GateRecord] | None]
T = TypeVar("T")


def _gates_of(trail: Trail) -> Lookup:
    """How to find a gate of the run by id: a pipeline run's step, item or call gate, a governed
    run's review gate."""
    if isinstance(trail, RunData):
        return trail.gate
    if isinstance(trail, GovernedState):
        return lambda gate_id: (trail, trail.gate) if trail.gate is not None else None
    return lambda gate_id: None


def _decision(action: str, outcome: str) -> None:
    labels = {"action": _bounded(action, ACTIONS), "outcome": outcome}
    _count(DECISIONS, "decisions sent to gates, by action and whether the gate took them", labels)


def _live(found: tuple[Any, GateRecord] | None) -> set[int]:
    return {id(v) for v in live(found[1])} if found is not None else set()


class RunMetrics:
    """One run's metrics: decisions as they are cast or refused, what its clock did (timeouts,
    escalations, reminders) from the audit entries recorded since the last look, the wait from a
    decision to the step it let start, and the run's start and end (a run continued as new
    started before: its audit trail was looked at then)."""

    def __init__(self, pipeline: str, trail: Trail) -> None:
        self.pipeline = pipeline_label(pipeline)
        self._name = pipeline  # for a gate's span, which names any pipeline
        self._trail = trail
        self._lookup = _gates_of(trail)
        self._seen = trail.audit_total
        fresh = not isinstance(trail, RunData) or trail.generation == 0
        # Gate ids decided to let their own unit run, and decisions that let the run go on
        # otherwise (the next step any unit starts), with when they were decided.
        self._own: dict[str, datetime] = {}
        self._next: list[datetime] = []
        if fresh:
            _count(RUNS_STARTED, "runs started", {"pipeline": self.pipeline})

    def refused(self, action: str, code: str) -> None:
        """A decision the rules refused (`code`: why)."""
        _decision(action, "refused")
        reason = _bounded(code, REFUSAL_REASONS)
        _count(REFUSALS, "decisions the rules refused, by reason", {"reason": reason})

    def cast(self, d: Decision, apply: Callable[[], T]) -> T:
        """Apply `d` (`apply` returns its refusal, a GateRefusal, or anything else once cast)
        and count it, the votes a new subject left behind, and the gate's wait if it closed."""
        was = _live(self._lookup(d.gate))
        applied = apply()
        found = self._lookup(d.gate)
        if isinstance(applied, GateRefusal):
            self.refused(d.action, applied.code)
        elif found is not None:
            self.accepted(d.action, found[1], len(was - _live(found)))
        return applied

    def accepted(self, action: str, gate: GateRecord, lapsed: int = 0) -> None:
        """A decision the gate took: the votes it left behind, and the gate's wait and the step
        it lets start when it closed the gate."""
        _decision(action, "accepted")
        if lapsed:
            _count(LAPSED, "votes left behind by a modify", {"pipeline": self.pipeline}, lapsed)
        if gate.outcome is None or gate.decided_at is None:
            return
        self._closed(gate, gate.outcome)
        own = gate.stage == "before" and gate.outcome in ("approve", "modify")
        if own or gate.outcome == "retry":
            if len(self._own) < MAX_WAITING or gate.gate in self._own:
                self._own[gate.gate] = gate.decided_at
        elif gate.outcome in GO_ON and len(self._next) < MAX_WAITING:
            self._next.append(gate.decided_at)

    def _closed(self, gate: GateRecord, outcome: str) -> None:
        if gate.decided_at is not None:
            labels = {"pipeline": self.pipeline, "outcome": _bounded(outcome, OUTCOMES)}
            wait = (gate.decided_at - gate.opened_at).total_seconds()
            _seconds(GATE_DECISION, "seconds from a gate's opening to its close", wait, labels)

    def observe(self) -> None:
        """Count what the run's clock did since the last look (its audit entries); a gate its
        deadline closed gets its span (workflows/tracing.py)."""
        trail = self._trail
        new = trail.audit_total - self._seen
        if new <= 0:
            return
        self._seen = trail.audit_total
        for entry in trail.audit[max(len(trail.audit) - new, 0) :]:
            labels = {"pipeline": self.pipeline}
            if entry.kind == "timeout":
                outcome = _bounded(entry.action, ACTIONS)
                _count(TIMEOUTS, "gates closed by their deadline", {**labels, "outcome": outcome})
                found = self._lookup(entry.gate or "")
                gate = found[1] if found is not None else None
                if gate is not None and gate.outcome is not None:
                    self._closed(gate, "timeout")
                    if gate.decided_at is not None:
                        action = entry.action or gate.outcome
                        tracing.gate_closed(self._name, action, gate, gate.decided_at, "timeout")
            elif entry.kind == "escalation":
                _count(ESCALATIONS, "gates escalated at their deadline", labels)
            elif entry.kind == "reminder":
                _count(REMINDERS, "reminders sent about open gates", labels)

    def started(self, effect: Invoke | CallTool) -> None:
        """A step (or an agent's call) starts now: the wait since the decision that let it
        start, and since the decisions that let the run go on otherwise, not measured yet."""
        if isinstance(effect, Invoke):  # a step, or an item of one whose gate is the step's
            keys = {effect.step, effect.step.partition(".")[0]}
        else:
            keys = {f"{effect.step}.call-{effect.n}"}
        since = [self._own.pop(k) for k in sorted(keys) if k in self._own] + self._next
        self._next = []
        now = workflow.now()
        for at in since:
            wait = (now - at).total_seconds()
            text = "seconds from a decision to the step it let start"
            _seconds(DECISION_TO_STEP, text, wait, {"pipeline": self.pipeline})

    def finished(self, state: str) -> None:
        labels = {"pipeline": self.pipeline, "state": state}
        _count(RUNS_FINISHED, "runs that ended, by how", labels)
