"""The Temporal SDK's tracing interceptor, with what Stepgate adds to it: the gate span's extern
function, and the deciding request's trace context kept for the handler that takes it.

The SDK's interceptor (temporalio.contrib.opentelemetry.TracingInterceptor) carries the trace
context in a header of every start, signal, update and activity, and records StartWorkflow,
RunWorkflow, StartActivity, RunActivity, HandleSignal, HandleUpdate and the like; in workflow
code each span is started and ended at once outside the workflow, never while it replays. Only
built when tracing is on (workflows.tracing.interceptors): importing this loads the
OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import opentelemetry.trace
import structlog
import temporalio.api.common.v1
from opentelemetry.trace import Link, SpanKind
from temporalio import worker
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

from workflows.tracing import DECISION_TRACE, GATE_SPAN, PROPAGATOR, GateSpan

log = structlog.get_logger("stepgate.tracing")
# The trace context header is small: a W3C traceparent and tracestate, kept only when it is.
MAX_CONTEXT_CHARS = 1024


def _span_context(carrier: Mapping[str, str]) -> opentelemetry.trace.SpanContext:
    return opentelemetry.trace.get_current_span(PROPAGATOR.extract(carrier)).get_span_context()


class StepgateTracing(TracingInterceptor):
    """TracingInterceptor, plus the gate span workflow code asks for (workflows/tracing.py)."""

    def workflow_interceptor_class(
        self, input: worker.WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        input.unsafe_extern_functions[GATE_SPAN] = self._gate_span
        return DecisionTracing

    def _gate_span(self, span: GateSpan) -> None:
        """Called from workflow code: a failure here would fail the workflow task, again at
        each retry, so a tracing fault is logged and the run goes on."""
        try:
            self._emit(span)
        except Exception:
            log.exception("could not record a gate's span", gate=span.name)

    def _emit(self, span: GateSpan) -> None:
        """Start and end the gate's span with its own times: in the run's trace, linked to the
        deciding request; in that request's trace when the run has none (started by a schedule
        or the CLI); none when neither has one."""
        parent = PROPAGATOR.extract(span.parent)
        link = _span_context(span.link) if span.link else None
        links: list[Link] = []
        if not _span_context(span.parent).is_valid:
            if span.link is None or link is None or not link.is_valid:
                return
            parent = PROPAGATOR.extract(span.link)
        elif link is not None and link.is_valid:
            links.append(Link(link))
        started = self.tracer.start_span(
            span.name,
            parent,
            kind=SpanKind.INTERNAL,
            attributes=span.attributes,
            links=links,
            start_time=span.start_ns,
        )
        started.end(end_time=span.end_ns)


class DecisionTracing(TracingWorkflowInboundInterceptor):
    """Keeps the trace context a signal or an update came with for its handler's task, where a
    decision that closes a gate reads it (workflows.tracing.DECISION_TRACE)."""

    def _request_context(
        self, headers: Mapping[str, temporalio.api.common.v1.Payload]
    ) -> dict[str, str] | None:
        payload = headers.get(self.header_key)
        if payload is None:
            return None
        try:
            carrier: Any = self.payload_converter.from_payloads([payload])[0]
        except Exception:  # a header someone else wrote: no link rather than a failed task
            return None
        if not isinstance(carrier, dict):
            return None
        kept = {
            k: v
            for k, v in carrier.items()
            if k in ("traceparent", "tracestate") and isinstance(v, str)
        }
        return kept if sum(map(len, kept.values())) <= MAX_CONTEXT_CHARS else None

    async def handle_signal(self, input: worker.HandleSignalInput) -> None:
        # Each handler runs in a task of its own: the value lives and dies with that task.
        DECISION_TRACE.set(self._request_context(input.headers))
        await super().handle_signal(input)

    async def handle_update_handler(self, input: worker.HandleUpdateInput) -> Any:
        DECISION_TRACE.set(self._request_context(input.headers))
        return await super().handle_update_handler(input)
