"""Metrics: the API's /metrics (admin key) and a worker's Prometheus endpoint, read with a strict
Prometheus text parser, moving when a gate is decided on the real dev server."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.runtime import Runtime

from activities.config import Settings
from activities.registry import ToolRegistry
from api import gates_open
from api.metrics import HttpMetrics
from tests.api.conftest import StartRun
from tests.api.helpers import wait_state
from tests.support import prom
from tests.support.procs import free_port
from tests.support.util import eventually
from worker import build_worker, make_runtime
from workflows import metrics as workflow_metrics
from workflows.client import make_client
from workflows.contract import SA_AWAITING, SA_PIPELINE, SA_STATE, WORKFLOW_TYPE

Auth = Callable[[str], dict[str, str]]
GAUGE = "stepgate_gates_open"
PRINCIPALS = ("root", "olga", "vic", "alice", "bob", "carol")


@functools.cache
def metrics_runtime() -> tuple[Runtime, str]:
    """One SDK runtime serving Prometheus text on a free loopback port, for this module."""
    address = f"127.0.0.1:{free_port()}"
    runtime = make_runtime(Settings(stepgate_worker_metrics_address=address, _env_file=None))  # type: ignore[call-arg]
    assert runtime is not None
    return runtime, address


@pytest.fixture
async def worker(api_settings: Settings, registry: ToolRegistry) -> AsyncIterator[None]:
    """The test's worker, on a client whose runtime serves metrics; `gated` is a catalog name."""
    runtime, _ = metrics_runtime()
    client = await make_client(api_settings, runtime=runtime)
    workflow_metrics.name_pipelines(["gated"])
    try:
        async with build_worker(client, api_settings, registry):
            yield
    finally:
        workflow_metrics.name_pipelines([])


async def scrape_worker() -> dict[str, prom.Family]:
    _, address = metrics_runtime()
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://{address}/metrics")
    assert r.status_code == 200
    return prom.parse(r.text)


async def scrape_api(http: httpx.AsyncClient, as_: Auth) -> dict[str, prom.Family]:
    r = await http.get("/metrics", headers=as_("root"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return prom.parse(r.text)


@pytest.fixture
def fresh_gauge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API counts the runs waiting at gates again at every scrape (not every 15 s), and the
    scrape waits for that count (on a loaded machine one can outlast the 2 s a scrape waits
    before serving the last value, which would make `before` stale)."""
    monkeypatch.setattr(gates_open, "FRESH_S", 0.0)
    monkeypatch.setattr(gates_open, "WAIT_S", gates_open.REFRESH_S)


def moved_by(
    before: dict[str, prom.Family], after: dict[str, prom.Family], name: str, **labels: str
) -> float:
    return prom.value(after, name, **labels) - prom.value(before, name, **labels)


async def worker_moved(
    before: dict[str, prom.Family], name: str, **labels: str
) -> dict[str, prom.Family]:
    """The worker's metrics once `name{labels}` has moved by one since `before`."""

    async def moved() -> dict[str, prom.Family] | None:
        after = await scrape_worker()
        return after if moved_by(before, after, name, **labels) == 1 else None

    after = await eventually(moved, what=f"{name} moved")
    assert after is not None
    return after


async def gauge_reaches(
    http: httpx.AsyncClient,
    as_: Auth,
    value: float,
    pipeline: str | None,
    priority: str = "normal",
) -> None:
    """Wait until the API's stepgate_gates_open{pipeline, priority} (summed over pipelines when
    `pipeline` is None) is `value` (visibility follows a run's upsert shortly after it)."""
    labels = {"priority": priority} | ({"pipeline": pipeline} if pipeline else {})

    async def probe() -> float:
        return prom.value(await scrape_api(http, as_), GAUGE, **labels)

    await eventually(probe, ok=lambda n: n == value, what=f"{GAUGE}{{{pipeline}}} == {value}")


def assert_no_label_names(families: list[dict[str, prom.Family]], *words: str) -> None:
    """No label value of any sample holds one of `words` (an id, a role), nor is a principal."""
    principals = {"user:" + p for p in PRINCIPALS} | set(PRINCIPALS)
    for found in families:
        for family in found.values():
            for sample in family.samples:
                for value in sample.labels.values():
                    assert value not in principals, sample
                    assert not any(w in value for w in words), sample


async def test_deciding_a_gate_moves_the_worker_and_api_metrics(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str, fresh_gauge: None
) -> None:
    """A gate decided through the API on the real dev server moves the worker's decision
    histogram, decision, refusal (by reason), decision-to-step, run and step metrics, the API's
    request counter by route template and its gates-open gauge (up while the run waits, down
    once decided); no label of either endpoint carries the workflow id or a principal."""
    before = await scrape_worker()
    waits = ("stepgate_gate_decision_seconds_count", {"pipeline": "gated", "outcome": "approve"})
    gate_route = "/workflows/{workflow_id}/gates/{gate}"
    api_before = await scrape_api(http, as_)
    waiting = prom.value(api_before, GAUGE, pipeline="gated", priority="normal")
    errors = prom.value(api_before, "stepgate_gates_open_refresh_errors_total")
    workflow_id = await start_run()
    status = await wait_state(http, workflow_id, "waiting", as_("vic"))
    await gauge_reaches(http, as_, waiting + 1, "gated")
    gate = f"/workflows/{workflow_id}/gates/release"
    refused = await http.post(gate, json={"action": "retry"}, headers=as_("alice"))
    assert refused.status_code == 422
    reason = refused.json()["error"]["code"]
    digest = status["open_gates"][0]["digest"]
    r = await http.post(gate, json={"action": "approve", "digest": digest}, headers=as_("alice"))
    assert r.status_code == 200, r.text
    await wait_state(http, workflow_id, "completed", as_("vic"))
    await gauge_reaches(http, as_, waiting, "gated")

    after = await worker_moved(before, waits[0], **waits[1])
    assert after["stepgate_gate_decision_seconds"].type == "histogram"
    d = "stepgate_decisions_total"
    assert prom.value(after, d, action="approve", outcome="accepted") >= 1
    assert prom.value(after, d, action="retry", outcome="refused") >= 1
    assert prom.value(after, "stepgate_steps_total", tool="test.echo", state="completed") >= 1
    assert prom.value(after, "stepgate_step_duration_seconds_count", tool="test.sleep") >= 1
    assert any(name.startswith("temporal_") for name in after), "the SDK's own metrics"
    api_after = await scrape_api(http, as_)
    key = {"route": gate_route, "method": "POST", "status": "200"}
    assert (
        prom.value(api_after, "stepgate_http_requests_total", **key)
        == prom.value(api_before, "stepgate_http_requests_total", **key) + 1
    )
    assert prom.value(api_after, "stepgate_http_request_duration_seconds_count", **key) >= 1
    assert moved_by(before, after, "stepgate_decision_refusals_total", reason=reason) == 1
    assert moved_by(before, after, "stepgate_decision_to_step_seconds_count", pipeline="gated") == 1
    assert moved_by(before, after, "stepgate_runs_started_total", pipeline="gated") == 1
    finished = {"pipeline": "gated", "state": "completed"}
    assert moved_by(before, after, "stepgate_runs_finished_total", **finished) == 1
    assert_no_label_names([after, api_after], workflow_id, team)
    assert prom.value(api_after, "stepgate_gates_open_refresh_errors_total") == errors


async def test_a_run_waiting_without_a_priority_counts_as_unknown(
    http: httpx.AsyncClient, client: Client, as_: Auth, fresh_gauge: None
) -> None:
    """A run that names who may decide it but no priority (one a build from before
    StepgatePriority parked) is counted under `unknown`. The total by priority is what is exact:
    with the runs earlier tests left waiting, a refresh's query budget may fold its pipeline into
    `other`."""
    before = prom.value(await scrape_api(http, as_), GAUGE, priority="unknown")
    told = TypedSearchAttributes(
        [
            SearchAttributePair(SA_PIPELINE, "gated"),
            SearchAttributePair(SA_STATE, "waiting"),
            SearchAttributePair(SA_AWAITING, ["role:ops"]),
        ]
    )
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        id=f"older-{uuid.uuid4()}",
        task_queue=f"nobody-{uuid.uuid4()}",  # no worker: it stays as it was started
        search_attributes=told,
    )
    try:
        await gauge_reaches(http, as_, before + 1, None, "unknown")
    finally:
        await handle.terminate("test over")
    await gauge_reaches(http, as_, before, None, "unknown")


async def test_a_gates_clock_moves_reminders_escalations_and_timeouts(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str, fresh_gauge: None
) -> None:
    """A gate that reminds, escalates at its deadline and then times out moves the reminder,
    escalation and timeout counters and the open-to-close histogram with outcome `timeout`;
    the run's inline definition is outside the catalog, so its metrics say `other`, on the
    worker and in the API's gauge, and its name is no label."""
    name = f"clocked_{uuid.uuid4().hex[:8]}"
    definition = {
        "name": name,
        "steps": [
            {
                "id": "wait",
                "tool": "test.echo",
                "with": {"ref": "x"},
                "approval": {
                    "approvers": [f"role:{team}"],
                    "priority": "urgent",
                    "remind_after": "300ms",
                    "timeout": "1s",
                    "on_timeout": "escalate",
                    "escalate_to": ["role:leads"],
                    "escalation_timeout": "1500ms",
                },
            }
        ],
    }
    before = await scrape_worker()
    waiting = prom.value(await scrape_api(http, as_), GAUGE, pipeline="other", priority="urgent")
    workflow_id = await start_run(definition, {}, who="root")
    await gauge_reaches(http, as_, waiting + 1, "other", "urgent")
    await wait_state(http, workflow_id, "failed", as_("vic"))
    await gauge_reaches(http, as_, waiting, "other", "urgent")
    timeouts = {"pipeline": "other", "outcome": "reject"}
    after = await worker_moved(before, "stepgate_gate_timeouts_total", **timeouts)
    other = {"pipeline": "other"}
    assert moved_by(before, after, "stepgate_gate_escalations_total", **other) == 1
    assert moved_by(before, after, "stepgate_gate_reminders_total", **other) >= 1
    closed = {"pipeline": "other", "outcome": "timeout"}
    assert moved_by(before, after, "stepgate_gate_decision_seconds_count", **closed) == 1
    assert moved_by(before, after, "stepgate_gate_decision_seconds_sum", **closed) >= 2.5
    finished = {"pipeline": "other", "state": "failed"}
    assert moved_by(before, after, "stepgate_runs_finished_total", **finished) == 1
    assert_no_label_names([after, await scrape_api(http, as_)], workflow_id, team, name)


async def test_a_modify_counts_the_votes_it_leaves_behind(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """At a gate needing two votes, an approval followed by another approver's modify lapses
    one vote; the modify is counted as accepted and the approval that completes the quorum
    closes the gate with outcome `modify`."""
    definition = {
        "name": f"two_votes_{uuid.uuid4().hex[:8]}",
        "steps": [
            {
                "id": "ship",
                "tool": "test.echo",
                "with": {"ref": "main"},
                "approval": {"approvers": [f"role:{team}"], "quorum": 2},
            }
        ],
    }
    before = await scrape_worker()
    workflow_id = await start_run(definition, {}, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    gate = f"/workflows/{workflow_id}/gates/ship"
    for who, body in (
        ("alice", {"action": "approve"}),
        ("bob", {"action": "modify", "patch": {"ref": "release"}}),
        ("alice", {"action": "approve"}),
    ):
        r = await http.post(gate, json=body, headers=as_(who))
        assert r.status_code == 200, r.text
    await wait_state(http, workflow_id, "completed", as_("vic"))
    closed = {"pipeline": "other", "outcome": "modify"}
    after = await worker_moved(before, "stepgate_gate_decision_seconds_count", **closed)
    assert moved_by(before, after, "stepgate_gate_votes_lapsed_total", pipeline="other") == 1
    accepted = {"action": "modify", "outcome": "accepted"}
    assert moved_by(before, after, "stepgate_decisions_total", **accepted) == 1


async def test_metrics_refuses_keys_without_the_permission(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """/metrics answers 401 without a key and 403 to an operator's or a viewer's key."""
    assert (await http.get("/metrics")).status_code == 401
    for who in ("olga", "vic"):
        r = await http.get("/metrics", headers=as_(who))
        assert r.status_code == 403, r.text


async def test_unmatched_paths_count_as_one_route(http: httpx.AsyncClient, as_: Auth) -> None:
    """Requests to paths no route serves are counted under `unmatched`, never their raw path."""
    for n in range(3):
        assert (await http.get(f"/no-such-{n}", headers=as_("root"))).status_code == 404
    families = await scrape_api(http, as_)
    routes = {s.labels["route"] for s in families["stepgate_http_requests_total"].samples}
    assert prom.value(families, "stepgate_http_requests_total", route="unmatched") >= 3
    assert not any(r.startswith("/no-such") for r in routes)


def test_rendered_text_parses_strictly_with_escaped_labels() -> None:
    """The API's rendering escapes quotes, backslashes and newlines in labels and keeps its
    histogram buckets cumulative, and an odd method is counted as `other`."""
    m = HttpMetrics()
    m.observe('/a"b\\c\nd', "GET", 200, 0.003)
    m.observe('/a"b\\c\nd', "GET", 200, 100.0)
    m.observe("/x", "BREW", 418, 0.2)
    families = prom.parse(m.render())
    route = '/a"b\\c\nd'
    assert prom.value(families, "stepgate_http_requests_total", route=route) == 2
    assert (
        prom.value(
            families, "stepgate_http_request_duration_seconds_bucket", route=route, le="0.005"
        )
        == 1
    )
    assert (
        prom.value(
            families, "stepgate_http_request_duration_seconds_bucket", route=route, le="+Inf"
        )
        == 2
    )
    assert prom.value(families, "stepgate_http_requests_total", method="other", status="418") == 1


def test_parser_refuses_what_is_out_of_grammar() -> None:
    """The strict parser refuses a bad escape, unquoted label, missing value and a histogram
    whose buckets are not cumulative, so the tests above could fail."""
    bad = [
        'm{a="x\\q"} 1',
        "m{a=x} 1",
        'm{a="x"}',
        '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1',
    ]
    for text in bad:
        with pytest.raises(ValueError):
            prom.parse(text)


def test_metrics_address_setting_takes_host_port_only() -> None:
    """STEPGATE_WORKER_METRICS_ADDRESS is host:port (or empty), and a taken port is a
    ValueError naming it, so the worker refuses to start (exit 2) instead of serving nothing."""
    for good in ("", "0.0.0.0:9464", "worker:9464", "[::1]:9464"):
        Settings(stepgate_worker_metrics_address=good, _env_file=None)  # type: ignore[call-arg]
    for bad in ("9464", "host:port", "a b:1", "http://x:1", "x:1/metrics", "x:1\n"):
        with pytest.raises(ValidationError):
            Settings(stepgate_worker_metrics_address=bad, _env_file=None)  # type: ignore[call-arg]
    _, taken = metrics_runtime()
    with pytest.raises(ValueError, match="in use"):
        make_runtime(Settings(stepgate_worker_metrics_address=taken, _env_file=None))  # type: ignore[call-arg]
