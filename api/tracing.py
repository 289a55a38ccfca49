"""A server span for each API request, when tracing is on (activities/tracing.py).

A pure ASGI middleware, the outermost, so everything a request does runs inside its span: the
Temporal calls it makes (StartWorkflow, StartWorkflowUpdate, SignalWorkflow... through the SDK's
tracing interceptor on the API's client) become its children, and every log line it writes, the
access log's included, carries its trace id. The span is named by the route's template
(`POST /workflows/{workflow_id}/gates/{gate}`), never the raw path, and carries the method, the
template, the status and the path as the access log keeps it (a signed link's token cut out);
never the query string, a header, the body or who asked.

Each request starts a trace of its own: a `traceparent` the client sends is not followed, so a
caller can neither join an operator's traces nor make the sampler keep every request it sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activities import tracing
from api.access_log import loggable
from api.metrics import UNMATCHED, route_template

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestTracing:
    """One SERVER span per HTTP request, ended when its response ends."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": loggable(scope["path"]),
            "url.scheme": scope.get("scheme", "http"),
        }
        status = 500
        # A new root: the client's trace context is not followed (see the module's docstring).
        with self.tracer.start_as_current_span(
            method,
            context=Context(),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def send_noting_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            error: str | None = None
            try:
                await self.app(scope, receive, send_noting_status)
            except BaseException as err:
                error = type(err).__name__  # the type only: a message may quote the request
                raise
            finally:
                route = route_template(scope)
                if route != UNMATCHED:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if error is not None or status >= 500:
                    span.set_attribute("error.type", error or str(status))
                    span.set_status(Status(StatusCode.ERROR))


def install(app: FastAPI) -> None:
    """Trace every request of `app` when tracing is on; nothing at all when it is off."""
    tracer = tracing.tracer("stepgate.api")
    if tracer is not None:
        app.add_middleware(RequestTracing, tracer=tracer)
