"""The outbound policy as tools meet it: real loopback servers, real connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities import default_registry
from activities.config import Settings
from activities.context import ToolContext
from activities.registry import tool
from activities.runtime import ToolActivities
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply, json_reply

MakeActs = Callable[..., ToolActivities]


def ok(server: LocalServer, path: str = "/x") -> None:
    server.route("GET", path, lambda seen: json_reply({"host": seen.headers.get("host")}))


async def refused(acts: ToolActivities, tool_name: str, args: dict[str, Any]) -> str:
    """Run one call that must be refused by the policy; return the refusal message."""
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call(tool_name, args))
    assert err.value.type == "EgressRefused", err.value.message
    assert err.value.non_retryable is True
    return err.value.message


@pytest.fixture
def other_server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_request_is_refused_when_target_is_loopback_by_default(
    make_acts: MakeActs, server: LocalServer
) -> None:
    """With no allow list a loopback URL is refused, naming address and rule; nothing is sent."""
    ok(server)
    message = await refused(
        make_acts(stepgate_http_allow=[]), "http.request", {"url": server.url("/x")}
    )
    assert (
        message == f"refused 127.0.0.1:{server.port}: loopback (allow it with STEPGATE_HTTP_ALLOW)"
    )
    assert server.seen == []


@pytest.mark.parametrize(
    "entry", ["127.0.0.1", "127.0.0.1:{port}", "127.0.0.0/8", "127.0.0.0/8:{port}"]
)
async def test_request_reaches_loopback_when_allow_entry_covers_it(
    make_acts: MakeActs, server: LocalServer, entry: str
) -> None:
    """Each entry form (host, host:port, cidr, cidr:port) opens the loopback server."""
    ok(server)
    acts = make_acts(stepgate_http_allow=[entry.format(port=server.port)])
    result = await acts.execute(make_call("http.request", {"url": server.url("/x")}))
    assert result.output["status"] == 200 and len(server.seen) == 1


async def test_request_reaches_loopback_by_name_when_the_name_is_allowed(
    make_acts: MakeActs, server: LocalServer
) -> None:
    """A name entry opens that name, not the address it resolves to."""
    ok(server)
    acts = make_acts(stepgate_http_allow=["localhost"])
    result = await acts.execute(
        make_call("http.request", {"url": f"http://localhost:{server.port}/x"})
    )
    assert result.output["json"] == {"host": f"localhost:{server.port}"}
    await refused(acts, "http.request", {"url": server.url("/x")})


async def test_request_is_refused_when_allow_entry_names_another_port(
    make_acts: MakeActs, server: LocalServer, other_server: LocalServer
) -> None:
    """host:port and cidr:port open that port only."""
    ok(other_server)
    for entry in (f"127.0.0.1:{server.port}", f"127.0.0.0/8:{server.port}"):
        acts = make_acts(stepgate_http_allow=[entry])
        await refused(acts, "http.request", {"url": other_server.url("/x")})
    assert other_server.seen == []


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("other", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
        ("http://[::1]:9/", "loopback"),
    ],
)
async def test_redirect_is_refused_when_it_leads_to_a_denied_address(
    make_acts: MakeActs, server: LocalServer, other_server: LocalServer, target: str, rule: str
) -> None:
    """Every redirect hop is checked: an allowed server cannot bounce a tool to a denied one."""
    location = other_server.url("/x") if target == "other" else target
    server.route("GET", "/go", lambda seen: Reply(302, b"", {"Location": location}))
    ok(other_server)
    acts = make_acts(stepgate_http_allow=[f"127.0.0.1:{server.port}"])
    args = {"url": server.url("/go"), "follow_redirects": True}
    message = await refused(acts, "http.request", args)
    assert rule in message
    assert len(server.seen) == 1 and other_server.seen == []


async def test_redirect_is_followed_when_every_hop_is_allowed(
    make_acts: MakeActs, server: LocalServer, other_server: LocalServer
) -> None:
    """Control for the redirect test: with both servers allowed, the hop is followed."""
    server.route("GET", "/go", lambda seen: Reply(302, b"", {"Location": other_server.url("/x")}))
    ok(other_server)
    acts = make_acts(
        stepgate_http_allow=[f"127.0.0.1:{server.port}", f"127.0.0.1:{other_server.port}"]
    )
    result = await acts.execute(
        make_call("http.request", {"url": server.url("/go"), "follow_redirects": True})
    )
    assert result.output["status"] == 200 and len(other_server.seen) == 1


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local (cloud metadata)"),
        ("http://[fd00:ec2::254]/latest/", "private (cloud metadata)"),
        ("http://10.0.0.1/", "private"),
        ("http://100.100.100.200/", "shared address space"),
        ("http://[fe80::1]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
async def test_request_is_refused_when_target_is_a_special_range(
    make_acts: MakeActs, url: str, rule: str
) -> None:
    """Metadata, private, shared, link-local and multicast addresses are refused before any
    connection, even with loopback allowed."""
    message = await refused(make_acts(), "http.request", {"url": url})
    assert f": {rule} (allow it with STEPGATE_HTTP_ALLOW)" in message


async def test_request_is_refused_when_loopback_is_spelled_another_way(
    make_acts: MakeActs, server: LocalServer
) -> None:
    """IPv4-mapped IPv6, decimal and 0.0.0.0 spellings of loopback are refused by default; the
    mapped form reaches the server once 127.0.0.1 is allowed, 0.0.0.0 never does."""
    ok(server)
    closed = make_acts(stepgate_http_allow=[])
    for host in ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "2130706433", "0x7f.1", "0.0.0.0"):
        await refused(closed, "http.request", {"url": f"http://{host}:{server.port}/x"})
    assert server.seen == []
    open_ = make_acts(stepgate_http_allow=["127.0.0.1"])
    mapped = await open_.execute(
        make_call("http.request", {"url": f"http://[::ffff:127.0.0.1]:{server.port}/x"})
    )
    assert mapped.output["status"] == 200
    message = await refused(open_, "http.request", {"url": f"http://0.0.0.0:{server.port}/x"})
    assert ": unspecified" in message and len(server.seen) == 1


async def test_request_is_refused_when_target_is_ipv6_loopback(make_acts: MakeActs) -> None:
    """A server on ::1 is refused by default and reached with a `::1` or `[::1]:port` entry."""
    v6 = LocalServer(host="::1").start()
    try:
        ok(v6)
        message = await refused(make_acts(), "http.request", {"url": v6.url("/x")})
        assert message.startswith(f"refused [::1]:{v6.port}: loopback")
        for entry in ("::1", f"[::1]:{v6.port}"):
            acts = make_acts(stepgate_http_allow=[entry])
            result = await acts.execute(make_call("http.request", {"url": v6.url("/x")}))
            assert result.output["status"] == 200
        assert len(v6.seen) == 2
    finally:
        v6.stop()


@pytest.mark.parametrize(
    ("setting", "what"),
    [
        ("stepgate_temporal_http_address", "the Temporal HTTP API"),
        ("temporal_address", "the Temporal frontend"),
        ("stepgate_ui_url", "the Temporal Web UI"),
    ],
)
async def test_request_is_refused_when_target_is_temporal_although_loopback_is_allowed(
    make_acts: MakeActs, server: LocalServer, setting: str, what: str
) -> None:
    """A server the settings name as a Temporal endpoint is refused under any loopback
    spelling, with all of loopback allowed; only its exact host:port entry opens it."""
    ok(server)
    value = (
        f"http://127.0.0.1:{server.port}"
        if setting == "stepgate_ui_url"
        else f"127.0.0.1:{server.port}"
    )
    allow = ["127.0.0.0/8", "::1", "localhost"]
    acts = make_acts(**{setting: value, "stepgate_http_allow": allow})
    for host in ("127.0.0.1", "localhost", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]"):
        message = await refused(acts, "http.request", {"url": f"http://{host}:{server.port}/x"})
        assert f"is {what}" in message and f"exact entry 127.0.0.1:{server.port}" in message
    assert server.seen == []
    exact = make_acts(**{setting: value, "stepgate_http_allow": [f"127.0.0.1:{server.port}"]})
    result = await exact.execute(make_call("http.request", {"url": server.url("/x")}))
    assert result.output["status"] == 200


async def test_operator_urls_open_for_their_own_tool_only(
    make_acts: MakeActs, server: LocalServer
) -> None:
    """STEPGATE_LLM_BASE_URL and STEPGATE_NOTIFY_URL open their host:port to llm.chat and
    notify.webhook; http.request to the same server stays refused, even after they connected."""
    completion = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "model": "m",
    }
    server.route("POST", "/v1/chat/completions", lambda seen: json_reply(completion))
    server.route("POST", "/hook", lambda seen: Reply(200, b"ok"))
    ok(server)
    acts = make_acts(
        stepgate_http_allow=[],
        stepgate_llm_base_url=server.url("/v1"),
        stepgate_llm_model="m",
        stepgate_notify_url=server.url("/hook"),
    )
    chat = await acts.execute(
        make_call("llm.chat", {"messages": [{"role": "user", "content": "x"}]})
    )
    assert chat.output["content"] == "hi"
    note = await acts.execute(make_call("notify.webhook", {"text": "gate open"}))
    assert note.output["status"] == 200
    await refused(acts, "http.request", {"url": server.url("/x")})
    assert [s.path for s in server.seen] == ["/v1/chat/completions", "/hook"]


class FetchIn(BaseModel):
    url: str


class FetchOut(BaseModel):
    status: int


@tool("acme.fetch", "1.0.0")
async def acme_fetch(inp: FetchIn, ctx: ToolContext) -> FetchOut:
    """A third-party tool that uses the shared client directly."""
    return FetchOut(status=(await ctx.http.get(inp.url)).status_code)


async def test_third_party_tool_is_refused_when_it_calls_a_denied_address(
    tool_settings: Settings, server: LocalServer
) -> None:
    """Tools outside Stepgate get the same policy through ctx.http, as a non-retryable error."""
    ok(server)
    registry = default_registry(entry_points=False)
    registry.add(acme_fetch)
    closed = tool_settings.model_copy(update={"stepgate_http_allow": []})
    acts = ToolActivities(registry, closed)
    try:
        message = await refused(acts, "acme.fetch", {"url": server.url("/x")})
    finally:
        await acts.http.aclose()
    assert "loopback" in message and server.seen == []
