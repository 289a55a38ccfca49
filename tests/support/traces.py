"""Spans kept in memory for tests: a tracer provider made this process's for one test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from temporalio.client import Client

from activities import tracing
from workflows.tracing import interceptors


@contextlib.contextmanager
def recording() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the block (every span kept, exported as it ends); off again after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def traced(client: Client) -> Client:
    """`client`'s connection with the tracing interceptor of the process's provider (a worker
    built on it traces too)."""
    config = client.config()
    config["interceptors"] = interceptors(tracing.provider())
    return Client(**config)


def clear_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the developer's reaches the test."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


def named(spans: Iterable[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called `name`."""
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, sorted(s.name for s in spans))
    return found[0]


def children(spans: Iterable[ReadableSpan], parent: ReadableSpan) -> list[str]:
    """The names of the spans whose parent is `parent`, sorted."""
    assert parent.context is not None
    return sorted(
        s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    )


def parent_of(spans: Sequence[ReadableSpan], span: ReadableSpan) -> ReadableSpan:
    assert span.parent is not None, span.name
    (found,) = [
        s for s in spans if s.context is not None and s.context.span_id == span.parent.span_id
    ]
    return found


def carried_text(spans: Iterable[ReadableSpan]) -> str:
    """Everything spans would export as text: names, attributes, events, links, statuses."""
    parts: list[str] = []
    for s in spans:
        parts += [s.name, repr(dict(s.attributes or {})), repr(s.status.description)]
        parts += [f"{e.name} {dict(e.attributes or {})}" for e in s.events]
        parts += [repr(dict(link.attributes or {})) for link in s.links]
    return "\n".join(parts)
