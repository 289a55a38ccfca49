"""A tool's outbound requests as client spans: method, host, port and status, never a path, a
query, credentials, a header or a host that spells a secret."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from temporalio.exceptions import ApplicationError

from activities import default_registry
from activities.addresses import IPAddress
from activities.config import Settings
from activities.egress_client import make_http_client
from activities.runtime import ToolActivities
from tests.support.traces import carried_text, recording
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply, json_reply

TOKEN = f"tok{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEPGATE_SECRET_APITOKEN", TOKEN)


async def to_loopback(host: str, port: int) -> list[IPAddress]:
    """Every name resolves to this machine (the test server)."""
    return [ipaddress.ip_address("127.0.0.1")]


@pytest.fixture
async def make_tools(tool_settings: Settings) -> AsyncIterator[Callable[..., ToolActivities]]:
    """ToolActivities whose client resolves every name to loopback; `**overrides` change settings."""
    built: list[ToolActivities] = []

    def make(**overrides: Any) -> ToolActivities:
        settings = tool_settings.model_copy(update=overrides)
        http = make_http_client(settings, resolve=to_loopback)
        built.append(ToolActivities(default_registry(entry_points=False), settings, http=http))
        return built[-1]

    yield make
    for acts in built:
        await acts.http.aclose()


async def test_a_tool_request_span_names_method_host_port_and_status_only(
    server: LocalServer, make_tools: Callable[..., ToolActivities]
) -> None:
    """One CLIENT span per request, ended with its body: method, host, port, scheme and status;
    the path, the query (a secret in it too), the userinfo and the headers never reach it."""
    server.route("GET", "/data", lambda seen: json_reply({"ok": True}))
    url = f"http://someone:pw-userinfo@127.0.0.1:{server.port}/data?q=${{secret.APITOKEN}}&x=qtext"
    args = {"url": url, "headers": {"Authorization": "Bearer ${secret.APITOKEN}", "X-N": "htext"}}
    with recording() as spans:
        result = await make_tools().execute(make_call("http.request", args))
    assert result.output["status"] == 200
    assert server.seen[-1].query["q"] == [TOKEN]  # the secret did go out, in the query
    (span,) = spans.get_finished_spans()
    assert (span.name, span.kind, span.status.status_code) == (
        "GET",
        SpanKind.CLIENT,
        StatusCode.UNSET,
    )
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "url.scheme": "http",
        "http.response.status_code": 200,
    }
    text = carried_text([span])
    for leak in (TOKEN, "pw-userinfo", "someone", "qtext", "htext", "/data", "Bearer"):
        assert leak not in text


async def test_each_redirect_hop_is_a_span_and_an_error_status_marks_it(
    server: LocalServer, make_tools: Callable[..., ToolActivities]
) -> None:
    """A followed redirect is two requests, two spans; a 4xx answer sets the span's error."""
    server.route("GET", "/old", lambda seen: Reply(302, b"", {"Location": "/gone"}))
    server.route("GET", "/gone", lambda seen: Reply(404, b"no"))
    call = make_call(
        "http.request",
        {"url": server.url("/old"), "follow_redirects": True, "expected_status": [404]},
    )
    with recording() as spans:
        await make_tools().execute(call)
    hops = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert [(s.attributes or {}).get("http.response.status_code") for s in hops] == [302, 404]
    assert hops[1].status.status_code == StatusCode.ERROR
    assert (hops[1].attributes or {})["error.type"] == "404"


async def test_a_refused_request_span_says_why_by_type_alone(
    server: LocalServer, make_tools: Callable[..., ToolActivities]
) -> None:
    """A request the egress policy refuses is a span with the refusal's type and an error status,
    no message (it names the address) and no status code; nothing was sent."""
    with recording() as spans, pytest.raises(ApplicationError):
        await make_tools(stepgate_http_allow=[]).execute(
            make_call("http.request", {"url": server.url("/x")})
        )
    (span,) = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR and span.status.description is None
    assert (span.attributes or {})["error.type"] == "EgressRefused"
    assert "http.response.status_code" not in (span.attributes or {}) and not span.events
    assert server.seen == []


@pytest.mark.parametrize("held", [True, False], ids=["secret-host", "plain-host"])
async def test_a_host_that_spells_a_secret_is_not_named(
    server: LocalServer, make_tools: Callable[..., ToolActivities], held: bool
) -> None:
    """A host made of a secret the call holds shows as *** on its span (the control: the same
    host as plain text is named)."""
    host = f"{TOKEN}.example"
    server.route("GET", "/x", lambda seen: json_reply({}))
    url = f"http://{'${secret.APITOKEN}' if held else TOKEN}.example:{server.port}/x"
    tools = make_tools(stepgate_http_allow=[host])
    with recording() as spans:
        await tools.execute(make_call("http.request", {"url": url}))
    (span,) = spans.get_finished_spans()
    assert (span.attributes or {})["server.address"] == ("***" if held else host)
    assert (span.attributes or {})["http.response.status_code"] == 200


async def test_no_span_while_tracing_is_off(
    server: LocalServer, make_tools: Callable[..., ToolActivities]
) -> None:
    """With no provider the request goes out as before and nothing is recorded."""
    server.route("GET", "/x", lambda seen: json_reply({}))
    tools = make_tools()
    with recording() as spans:
        pass
    result = await tools.execute(make_call("http.request", {"url": server.url("/x")}))
    assert result.output["status"] == 200 and spans.get_finished_spans() == ()
