"""Traces over the real stack: the API served over HTTP and a real worker in this process, sharing
one tracer provider with an in-memory exporter, against the session's dev server and a loopback
service the run's HTTP step calls."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from temporalio.client import Client
from temporalio.worker import Replayer

from activities import default_registry, tracing
from activities.config import Settings
from activities.registry import ToolRegistry
from api.tracing import RequestTracing
from tests.api.helpers import wait_state
from tests.support.api import serve_app
from tests.support.traces import (
    carried_text,
    children,
    clear_otel_env,
    named,
    parent_of,
    recording,
    traced,
)
from tests.tools.server import LocalServer, json_reply
from worker import WORKFLOWS, build_worker, workflow_runner
from workflows.client import make_data_converter
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow
from workflows.tracing_interceptor import StepgateTracing

Auth = Callable[[str], dict[str, str]]
TOKEN = f"tok{uuid.uuid4().hex}"
# Text that must never reach a span: the request's query and note, a comment, a link's token.
LEAKS = ("query-text-41", "note-text-42", "comment-text-43", "link-token-44")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_otel_env(monkeypatch)
    monkeypatch.setenv("STEPGATE_SECRET_APITOKEN", TOKEN)


@pytest.fixture
def service() -> Iterator[LocalServer]:
    """The outside service the run's HTTP step calls."""
    srv = LocalServer()
    srv.route("GET", "/data", lambda seen: json_reply({"ok": True}))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.asynccontextmanager
async def stack(
    client: Client, settings: Settings, registry: ToolRegistry, apps: list[FastAPI] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A worker on the traced client and the API served for `settings` (it builds its own
    client, traced the same way); a client of the API."""
    async with build_worker(traced(client), settings, registry):
        async with serve_app(settings, registry, apps=apps) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield http


def definition(team: str, port: int) -> dict[str, Any]:
    """One gated HTTP step whose URL and header hold a secret and the run's input."""
    return {
        "name": "traced",
        "input": {"type": "object", "properties": {"note": {"type": "string"}}},
        "secrets": {"APITOKEN": {"hosts": [f"127.0.0.1:{port}"]}},
        "steps": [
            {
                "id": "fetch",
                "tool": "http.request",
                "with": {
                    "url": f"http://127.0.0.1:{port}/data?key=${{secret.APITOKEN}}&n=${{input.note}}",
                    "headers": {"Authorization": "Bearer ${secret.APITOKEN}"},
                },
                "approval": {"approvers": [f"role:{team}"]},
            }
        ],
    }


async def run_and_decide(
    http: httpx.AsyncClient, as_: Auth, team: str, service: LocalServer
) -> tuple[str, dict[str, Any]]:
    """Start the run (with a query string), approve its gate through the API, wait for the end;
    the workflow id and the decision's answer."""
    r = await http.post(
        "/workflows?trace=query-text-41",
        json={"definition": definition(team, service.port), "input": {"note": "note-text-42"}},
        headers=as_("root"),
    )
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow_id"]
    await wait_state(http, workflow_id, "waiting", as_("alice"))
    r = await http.post(
        f"/workflows/{workflow_id}/gates/fetch",
        json={"action": "approve", "comment": "comment-text-43"},
        headers=as_("alice"),
    )
    assert r.status_code == 200, r.text
    await wait_state(http, workflow_id, "completed", as_("alice"))
    assert service.seen[-1].query["key"] == [TOKEN]
    return workflow_id, r.json()


def definition_input(raw: dict[str, Any]) -> PipelineInput:
    """The definition, validated as the API would, with an empty input."""
    report = validate_definition(raw, default_registry(entry_points=False))
    assert report.definition is not None, report.errors
    return PipelineInput(definition=report.definition, input={"note": "x"})


def ns(at: str) -> int:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def server_span(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert found.kind == SpanKind.SERVER and found.parent is None
    return found


async def test_one_run_is_one_trace_from_the_request_to_the_tool_call(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    team: str,
    service: LocalServer,
) -> None:
    """POST /workflows's server span is the root of the run's trace: StartWorkflow under it, the
    workflow's spans (RunWorkflow, StartActivity) under that, then RunActivity and the tool's
    HTTP client span; the decision request has its own trace, which the gate span links to."""
    with recording() as exporter:
        async with stack(client, api_settings, registry) as http:
            workflow_id, gate = await run_and_decide(http, as_, team, service)
        spans = exporter.get_finished_spans()
    start = server_span(spans, "POST /workflows")
    attrs = dict(start.attributes or {})
    assert attrs["http.route"] == "/workflows" and attrs["http.response.status_code"] == 201
    assert attrs["url.path"] == "/workflows"
    started = named(spans, "StartWorkflow:PipelineWorkflow")
    assert parent_of(spans, started) is start and started.kind == SpanKind.CLIENT
    assert {"RunWorkflow:PipelineWorkflow", "StartActivity:http.request"} <= set(
        children(spans, started)
    )
    run_activity = named(spans, "RunActivity:http.request")
    assert parent_of(spans, run_activity) is named(spans, "StartActivity:http.request")
    call = named(spans, "GET")
    assert parent_of(spans, call) is run_activity and call.kind == SpanKind.CLIENT
    assert dict(call.attributes or {})["http.response.status_code"] == 200
    run_trace = {
        s.name for s in spans if s.context and s.context.trace_id == start.context.trace_id
    }  # type: ignore[union-attr]
    assert {"RunActivity:http.request", "GET", "gate fetch"} <= run_trace
    assert (dict(started.attributes or {}))["temporalWorkflowID"] == workflow_id

    # The gate: open to decision, in the run's trace, linked to the decision request's update.
    decision = server_span(spans, "POST /workflows/{workflow_id}/gates/{gate}")
    update = named(spans, "StartWorkflowUpdate:submit_decision")
    assert parent_of(spans, update) is decision
    span = named(spans, "gate fetch")
    assert parent_of(spans, span) is started and span.kind == SpanKind.INTERNAL
    assert [link.context.span_id for link in span.links] == [update.context.span_id]  # type: ignore[union-attr]
    attrs = dict(span.attributes or {})
    assert {k: attrs[k] for k in attrs if k not in ("stepgate.gate.wait_s", "temporalRunID")} == {
        "temporalWorkflowID": workflow_id,
        "stepgate.pipeline": "traced",
        "stepgate.gate.id": "fetch",
        "stepgate.gate.step": "fetch",
        "stepgate.gate.stage": "before",
        "stepgate.gate.round": 0,
        "stepgate.gate.priority": "normal",
        "stepgate.gate.outcome": "approve",
        "stepgate.gate.deciders": 1,
        "stepgate.decision.action": "approve",
        "stepgate.gate.closed_by": "decision",
    }
    assert (span.start_time, span.end_time) == (ns(gate["opened_at"]), ns(gate["decided_at"]))
    assert attrs["stepgate.gate.wait_s"] == pytest.approx(
        (span.end_time - span.start_time) / 1e9,
        abs=0.001,  # type: ignore[operator]
    )
    # Each span once: the worker's evictions and replays added none.
    assert len([s for s in spans if s.name == "gate fetch"]) == 1


async def test_a_run_started_untraced_has_its_gate_span_in_the_deciding_requests_trace(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    team: str,
    service: LocalServer,
) -> None:
    """A run started with no trace (here by a plain client, as a schedule or the CLI would) gets
    no workflow spans, but its gate, decided through the API, is a span of the decision's trace,
    under its update."""
    inp = definition_input(definition(team, service.port))
    with recording() as exporter:
        async with stack(client, api_settings, registry) as http:
            workflow_id = f"untraced-{uuid.uuid4().hex[:8]}"
            await client.start_workflow(
                PipelineWorkflow.run,
                inp,
                id=workflow_id,
                task_queue=api_settings.stepgate_task_queue,
            )
            await wait_state(http, workflow_id, "waiting", as_("alice"))
            r = await http.post(
                f"/workflows/{workflow_id}/gates/fetch",
                json={"action": "approve"},
                headers=as_("alice"),
            )
            assert r.status_code == 200, r.text
            await wait_state(http, workflow_id, "completed", as_("alice"))
        spans = exporter.get_finished_spans()
    assert [s.name for s in spans if s.name.startswith("RunWorkflow")] == []
    gate = named(spans, "gate fetch")
    assert parent_of(spans, gate) is named(spans, "StartWorkflowUpdate:submit_decision")
    assert gate.links == ()


async def test_a_gate_closed_by_its_deadline_is_a_span_of_the_run_linked_to_no_request(
    client: Client, api_settings: Settings, registry: ToolRegistry, as_: Auth, team: str
) -> None:
    """Nobody decides: the gate's deadline closes it with its on_timeout action, and its one
    span, from open to that close, sits in the run's trace under the run's start, says the
    timeout closed it (its one decider the system's) and links to no request."""
    raw = {
        "name": "deadline",
        "steps": [
            {
                "id": "ship",
                "tool": "test.echo",
                "with": {"ref": "x"},
                "approval": {
                    "approvers": [f"role:{team}"],
                    "timeout": "1s",
                    "on_timeout": "reject",
                },
            }
        ],
    }
    with recording() as exporter:
        async with stack(client, api_settings, registry) as http:
            r = await http.post("/workflows", json={"definition": raw}, headers=as_("root"))
            assert r.status_code == 201, r.text
            workflow_id = r.json()["workflow_id"]
            await wait_state(http, workflow_id, "failed", as_("alice"))
            page = await http.get(f"/workflows/{workflow_id}/gates", headers=as_("alice"))
        spans = exporter.get_finished_spans()
    gates = [s for s in spans if s.name == "gate ship"]
    assert len(gates) == 1
    span = gates[0]
    assert parent_of(spans, span) is named(spans, "StartWorkflow:PipelineWorkflow")
    assert span.links == ()
    attrs = dict(span.attributes or {})
    assert attrs["stepgate.gate.closed_by"] == "timeout"
    assert attrs["stepgate.gate.outcome"] == "reject"
    assert attrs["stepgate.decision.action"] == "reject"
    (gate,) = page.json()["entries"]
    assert gate["decided_by"] == "system:timeout"
    assert attrs["stepgate.gate.deciders"] == 1
    assert attrs["stepgate.gate.wait_s"] >= 1.0  # type: ignore[operator]
    assert (span.start_time, span.end_time) == (ns(gate["opened_at"]), ns(gate["decided_at"]))


async def test_spans_carry_no_secret_payload_query_token_or_header(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    keys: dict[str, str],
    team: str,
    service: LocalServer,
) -> None:
    """Whatever a run and its requests carried (a secret in a URL and a header, the input, a
    query string, a comment, an API key, a signed link's token), no span holds it; a link's
    path shows with its token cut, as the access log shows it."""
    with recording() as exporter:
        async with stack(client, api_settings, registry) as http:
            await run_and_decide(http, as_, team, service)
            await http.get("/ui/links/link-token-44")
            await http.get("/ui/links/link-token-44/extra")
        spans = exporter.get_finished_spans()
    text = carried_text(spans)
    for leak in (*LEAKS, TOKEN, *keys.values(), "Bearer"):
        assert leak not in text, leak
    link = next(s for s in spans if (s.attributes or {}).get("http.route") == "/ui/links/{token}")
    assert dict(link.attributes or {})["url.path"] == "/ui/links/…"
    paths = {(s.attributes or {}).get("url.path") for s in spans}
    assert "/ui/links/…/extra" in paths


async def test_the_decisions_access_log_line_carries_its_trace_id(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    team: str,
    service: LocalServer,
) -> None:
    """A request's log lines, the access log's included, name the trace and span of its server
    span (the access log runs inside it)."""
    with (
        recording() as exporter,
        structlog.testing.capture_logs(processors=[tracing.add_trace_ids]) as logs,
    ):
        async with stack(client, api_settings, registry) as http:
            workflow_id, _ = await run_and_decide(http, as_, team, service)
        spans = exporter.get_finished_spans()
    decision = server_span(spans, "POST /workflows/{workflow_id}/gates/{gate}")
    (line,) = [
        e
        for e in logs
        if e.get("event") == "request" and e.get("path") == f"/workflows/{workflow_id}/gates/fetch"
    ]
    assert decision.context is not None
    assert line["trace_id"] == f"{decision.context.trace_id:032x}"
    assert line["span_id"] == f"{decision.context.span_id:016x}"


async def test_replaying_a_traced_run_emits_no_span_and_changes_no_command(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    team: str,
    service: LocalServer,
) -> None:
    """A worker that keeps no run cached (each task replays the history so far) emits each
    workflow span once; the history of the traced run replays with the tracing interceptor
    without a single new span, the gate's included, and without it too: tracing adds no
    command."""
    uncached = api_settings.model_copy(update={"stepgate_max_cached_workflows": 0})
    with recording() as exporter:
        async with stack(client, uncached, registry) as http:
            workflow_id, _ = await run_and_decide(http, as_, team, service)
        names = [s.name for s in exporter.get_finished_spans()]
        for name in (
            "gate fetch",
            "RunWorkflow:PipelineWorkflow",
            "StartActivity:http.request",
            "HandleUpdate:submit_decision",
            "CompleteWorkflow:PipelineWorkflow",
        ):
            assert names.count(name) == 1, (name, names)
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        exporter.clear()
        provider = tracing.provider()
        assert provider is not None
        for traced in (True, False):
            replayer = Replayer(
                workflows=list(WORKFLOWS),
                data_converter=make_data_converter(),
                workflow_runner=workflow_runner(),
                interceptors=[StepgateTracing(provider.get_tracer("t"))] if traced else [],
            )
            result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
            assert result.replay_failure is None, result.replay_failure
        assert exporter.get_finished_spans() == ()


async def test_tracing_off_installs_no_middleware_and_no_interceptor(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    team: str,
    service: LocalServer,
) -> None:
    """With no OTEL_* variable: no provider, no request middleware, no interceptor on the API's
    client, and a whole run (request, gate, tool call) records nothing."""
    assert tracing.configure("stepgate-api", "1") is None
    apps: list[FastAPI] = []
    with recording() as exporter:
        tracing.use(None)  # the recorder stays in place, but off: nothing may reach it
        async with stack(client, api_settings, registry, apps) as http:
            await run_and_decide(http, as_, team, service)
            (app,) = apps
            assert not any(m.cls is RequestTracing for m in app.user_middleware)
            api_client = app.state.stepgate.temporal.client
            assert list(api_client.config()["interceptors"]) == []
        assert exporter.get_finished_spans() == ()


async def test_a_clients_trace_context_is_not_followed(
    client: Client, api_settings: Settings, registry: ToolRegistry, as_: Auth
) -> None:
    """A request's span starts a trace of its own whatever `traceparent` the client sends, so a
    caller can neither join a trace nor force sampling."""
    chosen = "4bf92f3577b34da6a3ce929d0e0e4736"
    header = {"traceparent": f"00-{chosen}-00f067aa0ba902b7-01", **as_("vic")}
    with recording() as exporter:
        async with stack(client, api_settings, registry) as http:
            assert (await http.get("/tools", headers=header)).status_code == 200
        span = server_span(exporter.get_finished_spans(), "GET /tools")
    assert span.context is not None and f"{span.context.trace_id:032x}" != chosen


@pytest.fixture(params=["closed", "silent"])
def dead_collector(request: pytest.FixtureRequest) -> Iterator[int]:
    """A collector port that refuses connections, or takes them and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if request.param == "closed":
        sock.close()
    else:
        sock.listen(64)
    try:
        yield port
    finally:
        sock.close()


async def test_a_dead_collector_stalls_no_request_and_no_run(
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    team: str,
    service: LocalServer,
    dead_collector: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracing to a collector that is down (or never answers, each export waiting its whole
    timeout): the run completes, requests are answered in far less than that timeout, and a
    stopping process gives up on the queued spans within the flush bound."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{dead_collector}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    provider = tracing.configure("stepgate-test", "1")
    assert provider is not None
    try:
        async with stack(client, api_settings, registry) as http:
            await run_and_decide(http, as_, team, service)
            slowest = 0.0
            for _ in range(20):
                began = time.monotonic()
                assert (await http.get("/tools", headers=as_("vic"))).status_code == 200
                slowest = max(slowest, time.monotonic() - began)
        assert slowest < 5.0
        began = time.monotonic()
        tracing.flush(1.0)
        assert time.monotonic() - began < 3.0
    finally:
        tracing.use(None)
