"""Tracing's set-up from OTEL_*: off unless asked, bounded when on, and trace ids on log lines."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from activities import tracing
from activities.config import Settings
from activities.logs import configure_logging
from tests.support.traces import clear_otel_env, recording
from workflows.tracing import GateSpan, interceptors
from workflows.tracing_interceptor import StepgateTracing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clear_otel_env(monkeypatch)
    yield
    tracing.use(None)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": " OTLP, console,otlp"}, ["otlp", "console"]),
    ],
)
def test_tracing_is_off_unless_otel_asks_for_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: list[str]
) -> None:
    """No exporter named (or `none`, or the SDK disabled) means no provider and no interceptor;
    an OTLP endpoint alone means OTLP."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert tracing.exporter_names() == names
    provider = tracing.configure("stepgate-test", "1")
    assert (provider is None) == (not names) and tracing.provider() is provider
    assert (interceptors(provider) == []) == (not names)
    assert (tracing.tracer("x") is None) == (not names)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "PROTOCOL"),
    ],
)
def test_a_setting_that_cannot_work_is_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    """An exporter or protocol this build lacks stops the start, naming the variable."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match=named):
        tracing.configure("stepgate-test", "1")


def test_queue_batch_and_export_timeout_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_BSP_* and the OTLP timeout are taken as the SDK reads them, within the caps."""
    assert tracing.export_limits() == tracing.ExportLimits(2048, 512, 10.0)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100000000")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000000")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3600")
    assert tracing.export_limits() == tracing.ExportLimits(2048, 512, 10.0)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "200")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1.5")
    assert tracing.export_limits() == tracing.ExportLimits(100, 100, 1.5)


def test_the_service_is_named_unless_otel_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's own name by default; OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, win."""
    assert (
        tracing.resource("stepgate-worker", "1.2").attributes["service.name"] == "stepgate-worker"
    )
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ops,deployment.environment=prod")
    attributes = tracing.resource("stepgate-worker", "1.2").attributes
    assert (attributes["service.name"], attributes["deployment.environment"]) == ("ops", "prod")
    assert attributes["service.version"] == "1.2"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ops-worker")
    assert tracing.resource("stepgate-worker", "1.2").attributes["service.name"] == "ops-worker"


def test_the_console_exporter_prints_spans(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTEL_TRACES_EXPORTER=console: a span goes out on standard output once flushed."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracing.configure("stepgate-test", "1")
    assert provider is not None
    tracer = tracing.tracer("t")
    assert tracer is not None
    tracer.start_span("printed-span").end()
    assert tracing.flush()
    provider.shutdown()
    assert '"name": "printed-span"' in capsys.readouterr().out


@pytest.fixture
def silent_collector() -> Iterator[int]:
    """A port that takes connections and never answers: the worst a collector can do."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_flush_gives_up_on_a_silent_collector(
    monkeypatch: pytest.MonkeyPatch, silent_collector: int
) -> None:
    """A stopping process waits for its queued spans at most the flush bound, however long the
    exporter would wait on a collector that never answers."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{silent_collector}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "8")
    provider = tracing.configure("stepgate-test", "1")
    tracer = tracing.tracer("t")
    assert provider is not None and tracer is not None
    for _ in range(10):
        tracer.start_span("queued").end()
    started = time.monotonic()
    assert tracing.flush(0.5) is False
    assert time.monotonic() - started < 2.0


def test_log_lines_carry_the_current_trace_and_span_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A structured log line written inside a span carries its trace and span ids (hex), one
    written outside carries none."""
    configure_logging(Settings(stepgate_log_format="json", _env_file=None))  # type: ignore[call-arg]
    log = structlog.get_logger("stepgate.test")
    try:
        with recording() as spans:
            tracer = tracing.tracer("t")
            assert tracer is not None
            with tracer.start_as_current_span("work"):
                log.warning("inside")
            log.warning("outside")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    inside = next(e for e in lines if e["event"] == "inside")
    outside = next(e for e in lines if e["event"] == "outside")
    context = spans.get_finished_spans()[0].context
    assert context is not None
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in outside and "span_id" not in outside


@pytest.mark.server
@pytest.mark.parametrize("entry", [["worker.py"], ["-m", "api"]], ids=["worker", "api"])
def test_a_process_with_unusable_otel_settings_does_not_start(
    tmp_path: Path, entry: list[str]
) -> None:
    """The worker and the API refuse to start (exit 2, naming the variable) with an exporter
    this build lacks, before reaching for Temporal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "STEPGATE_"))}
    env.update(
        OTEL_TRACES_EXPORTER="zipkin",
        STEPGATE_DATA=str(tmp_path),
        STEPGATE_LOG_FORMAT="json",
        TEMPORAL_ADDRESS="127.0.0.1:1",
    )
    done = subprocess.run(
        [sys.executable, *entry], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "OTEL_TRACES_EXPORTER" in done.stderr and "zipkin" in done.stderr


def test_the_operations_page_documents_every_otel_variable() -> None:
    """docs/operations.md's Traces table has a row for each OTEL_* variable activities/tracing.py
    reads and for those it leaves to the SDK (resource, sampler, batch settings)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    table = text[text.index("## Traces") : text.index("**What a trace holds.**")]
    first_cells = " ".join(
        line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `")
    )
    source = (ROOT / "activities" / "tracing.py").read_text()
    read = set(re.findall(r"\bOTEL_[A-Z_]*[A-Z]\b", source))
    left_to_the_sdk = {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "OTEL_BSP_SCHEDULE_DELAY",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_HEADERS",
    }
    assert sorted(v for v in read | left_to_the_sdk if f"`{v}`" not in first_cells) == []


def test_a_failing_tracer_never_fails_the_workflow_task() -> None:
    """The gate span's extern function, called from workflow code, logs a tracer's failure
    instead of raising it (a raise would fail the workflow task at every retry)."""

    class Broken:
        def start_span(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("tracer down")

    span = GateSpan(
        name="gate g",
        parent={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        link=None,
        attributes={},
        start_ns=1,
        end_ns=2,
    )
    with structlog.testing.capture_logs() as logs:
        StepgateTracing(Broken())._gate_span(span)  # type: ignore[arg-type]
    assert [e["event"] for e in logs] == ["could not record a gate's span"]
