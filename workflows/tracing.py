"""Traces from workflow code: one span for each gate, from its opening to the decision that closed
it, in the run's trace and linked to the request that sent that decision, or to the deadline
that closed it (`stepgate.gate.closed_by`: `decision` or `timeout`).

Workflow code never holds a span open (a span cannot outlive a replay): when a decision closes a
gate, its handler hands the extern function the tracing interceptor registers
(workflows/tracing_interceptor.py) the gate's facts, with the times taken from the run's state
(opened and decided, both workflow time), and the span is started and ended at once outside the
workflow. Nothing is handed while the workflow replays, so a run taken back after an eviction
emits no gate span twice, and no command is added: a traced run replays untraced and the other
way round. Without the interceptor (tracing off) there is no extern function and this costs a
dictionary lookup.

What a gate span carries is bounded and free of data: the gate's id, step, stage, round and
priority, the outcome and the deciding action, what closed it, how many principals decided it
(not who), the wait in seconds and the pipeline's name; never a subject, a patch, an answer or a comment.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from temporalio import workflow

from workflows.rules.records import GateRecord

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from temporalio.client import Interceptor

# The extern function the interceptor registers for workflow code.
GATE_SPAN = "__stepgate_gate_span"
# W3C trace context, between workflow code and the extern function.
PROPAGATOR = TraceContextTextMapPropagator()
# The trace context of the request whose signal or update the current handler runs (set by the
# interceptor in the handler's own task), so the gate span links to the request that decided it.
DECISION_TRACE: ContextVar[dict[str, str] | None] = ContextVar(
    "stepgate_decision_trace", default=None
)

Attributes = dict[str, str | int | float]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class GateSpan:
    """What workflow code hands the extern function for one gate's span."""

    name: str
    parent: dict[str, str]  # the run's trace context; empty when the run has none
    link: dict[str, str] | None  # the deciding request's, when it came with one
    attributes: Attributes
    start_ns: int
    end_ns: int


def _ns(at: datetime) -> int:
    """Nanoseconds since the epoch, exactly (workflow time has microseconds)."""
    return (at - EPOCH) // timedelta(microseconds=1) * 1_000


def gate_attributes(
    pipeline: str, action: str, gate: GateRecord, wait_s: float, by: str = "decision"
) -> Attributes:
    info = workflow.info()
    return {
        "temporalWorkflowID": info.workflow_id,
        "temporalRunID": info.run_id,
        "stepgate.pipeline": pipeline,
        "stepgate.gate.id": gate.gate,
        "stepgate.gate.step": gate.step,
        "stepgate.gate.stage": gate.stage,
        "stepgate.gate.round": gate.round,
        "stepgate.gate.priority": gate.priority,
        "stepgate.gate.outcome": gate.outcome or "",
        "stepgate.gate.deciders": len(gate.decided_by),
        "stepgate.gate.wait_s": wait_s,
        "stepgate.decision.action": action,
        "stepgate.gate.closed_by": by,
    }


def gate_closed(
    pipeline: str, action: str, gate: GateRecord, at: datetime, by: str = "decision"
) -> None:
    """From the handler of a decision taken at `at`: a span for `gate` if that decision closed
    it (tracing on, not replaying). `by="timeout"` from the run's loop, when the gate's deadline
    closed it with `action` (its on_timeout); such a span links to no request."""
    emit = workflow.extern_functions().get(GATE_SPAN)
    if emit is None or gate.outcome is None or gate.decided_at != at:
        return
    if workflow.unsafe.is_replaying():
        return
    parent: dict[str, str] = {}
    PROPAGATOR.inject(parent)
    wait_s = max((at - gate.opened_at).total_seconds(), 0.0)
    emit(
        GateSpan(
            name=f"gate {gate.step}",
            parent=parent,
            link=DECISION_TRACE.get() if by == "decision" else None,
            attributes=gate_attributes(pipeline, action, gate, round(wait_s, 3), by),
            start_ns=_ns(gate.opened_at),
            end_ns=_ns(at),
        )
    )


def interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """The client (and so worker) interceptors for `provider`: none while tracing is off. The
    SDK's tracing module is imported only then (it loads the OpenTelemetry SDK)."""
    if provider is None:
        return []
    from workflows.tracing_interceptor import StepgateTracing

    return [StepgateTracing(provider.get_tracer("stepgate.temporal"))]
