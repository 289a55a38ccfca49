"""Traces: OpenTelemetry, set up from the standard OTEL_* variables, off unless they ask for it.

A process (the API, a worker) calls `configure` once at start. Tracing is on when
OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`, or both) or, unset, when an OTLP
endpoint is set; `none`, OTEL_SDK_DISABLED=true or neither leaves it off: no provider, no
interceptor, no middleware, no span anywhere. The SDK reads the rest itself: the endpoint,
headers, certificates and compression (OTEL_EXPORTER_OTLP_*), the sampler
(OTEL_TRACES_SAMPLER[_ARG]), the resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) and the
batch settings (OTEL_BSP_*), the last ones held under caps: a collector that is down or slow
costs dropped spans, never a request or a workflow task waiting (ended spans go into a bounded
queue that a thread of the SDK's exports).

Also here: the client span of each outbound tool request (activities/egress_client.py) and the
log processor that puts the current trace and span ids on every structured log line.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    OTEL_SDK_DISABLED,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from activities.masking import mask_text

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

# Caps on what the SDK would take from OTEL_BSP_* and OTEL_EXPORTER_OTLP_*TIMEOUT: at most this
# many ended spans wait for export (past it new ones are dropped), this many go in one export,
# and one export (its retries included) gives up after this long.
MAX_QUEUE_SPANS = 2048
MAX_BATCH_SPANS = 512
MAX_EXPORT_TIMEOUT_S = 10.0
# How long a stopping process waits for the spans still queued before it exits without them.
FLUSH_S = 2.0
EXPORTERS = ("otlp", "console")
QUIETED_LOGGERS = (
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)
# The only OTLP protocol this build carries (opentelemetry-exporter-otlp-proto-http).
OTLP_PROTOCOL = "http/protobuf"
# The methods a client span names as they are; any other is `_OTHER` (semantic conventions).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Request extension carrying the secret values the sending call holds (activities/tools/_http.py):
# a host that spells one of them is not put on a span.
SECRETS_EXTENSION = "stepgate.secrets"
REDACTED = "***"


@dataclass(frozen=True)
class ExportLimits:
    """What the batch processor and the exporter were given, after the caps."""

    queue_spans: int
    batch_spans: int
    export_timeout_s: float


_provider: TracerProvider | None = None


def exporter_names() -> list[str]:
    """The exporters OTEL_* asks for; [] when tracing stays off. ValueError names a bad value."""
    env = os.environ
    if env.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return []
    raw = env.get(OTEL_TRACES_EXPORTER, "").strip().lower()
    if not raw:
        endpoint = env.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or env.get(
            OTEL_EXPORTER_OTLP_ENDPOINT
        )
        return ["otlp"] if endpoint else []
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in (*EXPORTERS, "none")]
    if unknown:
        raise ValueError(
            f"{OTEL_TRACES_EXPORTER}: unknown exporter {unknown[0]!r} (otlp, console or none)"
        )
    out = [n for n in dict.fromkeys(names) if n != "none"]
    for variable in (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL):
        protocol = env.get(variable, "").strip()
        if "otlp" in out and protocol and protocol != OTLP_PROTOCOL:
            raise ValueError(f"{variable}: only {OTLP_PROTOCOL} is supported, not {protocol!r}")
    return out


def export_limits() -> ExportLimits:
    """OTEL_BSP_* and the OTLP timeout as the SDK reads them, held under the caps."""
    from opentelemetry.exporter.otlp.proto.http._common import _resolve_timeout
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The SDK's own readers of these variables (each logs a bad value and uses its default).
    queued: int = BatchSpanProcessor._default_max_queue_size()  # type: ignore[no-untyped-call]
    batched: int = BatchSpanProcessor._default_max_export_batch_size()  # type: ignore[no-untyped-call]
    queue = max(min(queued, MAX_QUEUE_SPANS), 1)
    batch = max(min(batched, MAX_BATCH_SPANS, queue), 1)
    timeout = min(_resolve_timeout(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT), MAX_EXPORT_TIMEOUT_S)
    return ExportLimits(queue, batch, timeout if timeout > 0 else MAX_EXPORT_TIMEOUT_S)


def resource(service: str, version: str) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as the SDK reads them; `service` when
    neither names the service, and `version` when they give none."""
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    found = Resource.create()
    name = str(found.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: service}))
    if SERVICE_VERSION not in found.attributes:
        found = found.merge(Resource({SERVICE_VERSION: version}))
    return found


def configure(service: str, version: str) -> TracerProvider | None:
    """Tracing for this process as OTEL_* says (see the module's docstring); None when off.
    ValueError names a variable whose value cannot be used. The SDK is imported only when on."""
    names = exporter_names()
    if not names:
        use(None)
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    limits = export_limits()
    # With a collector down the batch processor would log each span it drops once its queue is
    # full, and the exporter each retry: only the exporter's one line per lost batch is kept.
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # The sampler comes from OTEL_TRACES_SAMPLER; no exit hook: a stopping process calls flush.
    provider = TracerProvider(resource=resource(service, version), shutdown_on_exit=False)
    for name in names:
        exporter = (
            ConsoleSpanExporter(out=sys.stdout)
            if name == "console"
            else OTLPSpanExporter(timeout=limits.export_timeout_s)
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=limits.queue_spans,
                max_export_batch_size=limits.batch_spans,
            )
        )
    use(provider)
    return provider


def use(provider: TracerProvider | None) -> None:
    """Make `provider` this process's (None: tracing off); tests give theirs here."""
    global _provider
    _provider = provider


def provider() -> TracerProvider | None:
    return _provider


def tracer(name: str) -> trace.Tracer | None:
    """A tracer of the process's provider; None while tracing is off."""
    return None if _provider is None else _provider.get_tracer(name)


def flush(timeout_s: float = FLUSH_S) -> bool:
    """Export what is queued, waiting at most `timeout_s` (the SDK's own flush waits for every
    export, however long a dead collector makes each one); False if it did not finish."""
    if _provider is None:
        return True
    worker = threading.Thread(
        target=_provider.force_flush, name="stepgate-trace-flush", daemon=True
    )
    worker.start()
    worker.join(timeout_s)
    return not worker.is_alive()


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event.setdefault("span_id", trace.format_span_id(context.span_id))
    return event


def _host(request: httpx.Request) -> str:
    """The host a request goes to, unless it spells a secret the sending call holds."""
    host = request.url.host
    hidden = request.extensions.get(SECRETS_EXTENSION)
    if hidden and mask_text(host, frozenset(hidden)) != host:
        return REDACTED
    return host


@contextmanager
def client_span(request: httpx.Request) -> Iterator[trace.Span | None]:
    """A client span for one outbound request (each redirect hop is one): its method, host, port
    and status, never its path, query, credentials or headers; None while tracing is off. It
    ends with the response's body (`traced`), or here with the exception that ends the block."""
    tracer_ = tracer("stepgate.egress")
    if tracer_ is None:
        yield None
        return
    method = request.method if request.method in METHODS else "_OTHER"
    url = request.url
    span = tracer_.start_span(
        method,
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": method,
            "server.address": _host(request),
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "url.scheme": url.scheme,
        },
    )
    try:
        with trace.use_span(span, record_exception=False, set_status_on_exception=False):
            yield span
    except BaseException as err:
        # The type only: a message may quote the URL, a host or what a server answered.
        kind = getattr(err, "type", None)
        span.set_attribute("error.type", kind if isinstance(kind, str) else type(err).__name__)
        span.set_status(Status(StatusCode.ERROR))
        span.end()
        raise


def traced(response: httpx.Response, span: trace.Span) -> httpx.Response:
    """`response` with its status on `span`, which ends when the body is closed."""
    span.set_attribute("http.response.status_code", response.status_code)
    if response.status_code >= 400:
        span.set_attribute("error.type", str(response.status_code))
        span.set_status(Status(StatusCode.ERROR))
    response.stream = _EndsSpan(response.stream, span)
    return response


class _EndsSpan(httpx.AsyncByteStream):
    """A response body that ends its request's span when it is closed (once)."""

    def __init__(self, inner: Any, span: trace.Span) -> None:
        self._inner = inner
        self._span: trace.Span | None = span

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            span, self._span = self._span, None
            if span is not None:
                span.end()
