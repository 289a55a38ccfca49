"""MCP over streamable HTTP at /mcp, driven by the SDK's own client against the real API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitRequestParams, ElicitRequestURLParams, ElicitResult

from activities.config import Settings
from api.mcp.http import MAX_SESSIONS_PER_PRINCIPAL
from tests.api.conftest import Serve
from tests.api.helpers import eventually, wait_state
from tests.support.mcp import DORA, allow_mcp_decisions, data, over_http, recorder, text

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
async def served(
    serve: Serve, api_settings: Settings, tmp_path: Path, team: str, worker: None
) -> AsyncIterator[str]:
    """The API with dora's key and a worker; yields its base URL."""
    async with serve(allow_mcp_decisions(api_settings, tmp_path, team)) as url:
        yield url


async def test_permitted_key_runs_a_gated_pipeline_to_completion(
    served: str, keys: dict[str, str]
) -> None:
    """A key holding decide_via_mcp lists the tools (decide, each catalog pipeline typed by its
    input), starts `gated` through its own tool, sees the gate in its approvals and in the run's
    resource, decides it through MCP (channel `mcp` in the audit), and sees the run complete."""
    async with over_http(served, DORA) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert {"list_pipelines", "start_run", "get_run", "list_approvals", "cancel_run"} <= set(
            tools
        )
        assert {"start_governed", "search_memory", "decide", "review_gate"} <= set(tools)
        assert tools["run_gated"].input_schema["required"] == ["ref"]
        assert tools["run_hello"].input_schema["type"] == "object"
        started = data(await mcp.call_tool("run_gated", {"ref": "main"}))
        workflow_id = started["workflow_id"]
        inbox = await eventually(
            lambda: mcp.call_tool("list_approvals", {}),
            lambda r: any(i["workflow_id"] == workflow_id for i in data(r)["items"]),
            "the gate in dora's approvals",
        )
        item = next(i for i in data(inbox)["items"] if i["workflow_id"] == workflow_id)
        assert item["gate"] == "release"
        assert item["page"] == f"{served}/ui/runs/{workflow_id}/gates/release"
        resource = await mcp.read_resource(f"stepgate://runs/{workflow_id}")
        status = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
        assert [g["gate"] for g in status["open_gates"]] == ["release"]
        decided = data(
            await mcp.call_tool(
                "decide", {"workflow_id": workflow_id, "gate": "release", "action": "approve"}
            )
        )
        assert decided["state"] == "approved", decided
        await eventually(
            lambda: mcp.call_tool("get_run", {"workflow_id": workflow_id}),
            lambda r: data(r)["state"] == "completed",
            "the run completed",
        )
    async with httpx.AsyncClient(base_url=served) as http:
        audit = (
            await http.get(
                f"/workflows/{workflow_id}/audit", headers={"Authorization": f"Bearer {DORA}"}
            )
        ).json()
    votes = [e for e in audit["entries"] if e.get("actor") == "dora"]
    assert votes and all(e.get("channel") == "mcp" for e in votes), audit


async def test_key_without_the_permission_cannot_decide_and_is_sent_to_the_page(
    served: str, keys: dict[str, str], as_: Auth
) -> None:
    """bob may decide the gate but lacks decide_via_mcp: decide is not offered and is refused
    when named; review_gate sends him to the gate's page by URL elicitation (2026-07-28 and
    handshake-era clients alike), and an in-band "accept" carrying an approval decides nothing."""
    async with over_http(served, keys["bob"]) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert "decide" not in names and "review_gate" in names
        workflow_id = data(await mcp.call_tool("run_gated", {"ref": "main"}))["workflow_id"]
        await eventually(
            lambda: mcp.call_tool("get_run", {"workflow_id": workflow_id}),
            lambda r: data(r)["state"] == "waiting",
            "the run waits at its gate",
        )
        refused = await mcp.call_tool(
            "decide", {"workflow_id": workflow_id, "gate": "release", "action": "approve"}
        )
        assert refused.is_error and "decide_via_mcp" in text(refused)
    page = f"{served}/ui/runs/{workflow_id}/gates/release"
    in_band = ElicitResult(action="accept", content={"action": "approve", "decision": "approve"})
    for mode in ("auto", "legacy"):
        asked: list[ElicitRequestParams] = []
        async with over_http(
            served, keys["bob"], mode=mode, elicitation=recorder(in_band, asked)
        ) as mcp:
            got = data(
                await mcp.call_tool("review_gate", {"workflow_id": workflow_id, "gate": "release"})
            )
        assert [type(a) for a in asked] == [ElicitRequestURLParams], mode
        assert asked[0].url == page  # type: ignore[union-attr]
        assert got["decided_here"] is False and got["gate"]["state"] == "open", got
    async with httpx.AsyncClient(base_url=served) as http:
        gates = (await http.get(f"/workflows/{workflow_id}/gates", headers=as_("bob"))).json()
        audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("bob"))).json()
    gate = gates["entries"][0]
    assert (gate["state"], gate["approvals"], gate["rejections"]) == ("open", [], [])
    assert not [e for e in audit["entries"] if e.get("actor") == "bob"], audit
    # The person decides themself (here through the API), and the run goes on.
    async with httpx.AsyncClient(base_url=served) as http:
        r = await http.post(
            f"/workflows/{workflow_id}/gates/release",
            json={"action": "approve"},
            headers=as_("bob"),
        )
        assert r.status_code == 200, r.text
        await wait_state(http, workflow_id, "completed", as_("bob"))


LONG = "x" * 1_001
DOTTED = """
name: ops.restart
version: 3
description: a pipeline whose name no MCP client takes as a tool name
input: {type: object, required: [host], properties: {host: {type: string, maxLength: 64}}}
steps: [{id: say, tool: test.echo, with: {host: "${input.host}"}}]
"""


async def test_refusals_are_tool_errors_naming_the_field(
    serve: Serve, api_settings: Settings, keys: dict[str, str], as_: Auth
) -> None:
    """No key: 401 in the API's shape before any MCP. A viewer's starts are refused (naming
    `start`), bad arguments are refused naming each field and why (the routes' own bounds: a
    workflow id, the pipeline's input schema, unknown arguments), an unknown tool is refused,
    and none of it is a protocol error or a 500."""
    async with serve(api_settings) as url, httpx.AsyncClient(base_url=url) as http:
        for method in ("GET", "POST", "DELETE"):
            r = await http.request(method, "/mcp", json={} if method == "POST" else None)
            assert r.status_code == 401, (method, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
        # Who a key is, as `stepgate mcp` asks before it lists the tools.
        me = (await http.get("/me", headers=as_("vic"))).json()
        assert me == {"principal": "vic", "roles": ["viewer"], "permissions": ["read"]}
        assert (
            "decide_via_mcp" in (await http.get("/me", headers=as_("root"))).json()["permissions"]
        )
        assert (await http.get("/me")).status_code == 401
        async with over_http(url, keys["vic"]) as mcp:
            for name, args in (
                ("start_run", {"definition": "gated", "input": {"ref": "main"}}),
                ("run_gated", {"ref": "main"}),
                ("start_governed", {"request": "restart the web tier"}),
            ):
                refused = await mcp.call_tool(name, args)
                assert refused.is_error, name
                assert "forbidden" in text(refused) and "start" in text(refused), text(refused)
        # carol only approves (no permission at all): no pipeline to start, her gates to review.
        async with over_http(url, keys["carol"]) as mcp:
            names = {t.name for t in (await mcp.list_tools()).tools}
            assert {"review_gate", "list_approvals"} <= names, names
            assert not [n for n in names if n.startswith("run_")] and "decide" not in names
        async with over_http(url, keys["olga"]) as mcp:
            cases: list[tuple[str, dict[str, Any], str]] = [
                ("get_run", {"workflow_id": LONG}, "breaks maxLength: 1000"),
                ("get_run", {}, "'workflow_id' is a required property"),
                ("get_run", {"workflow_id": "a", "extra": 1}, "extra"),
                ("start_run", {"definition": "gated", "workflow_id": "bad id!"}, "- workflow_id"),
                ("run_gated", {"ref": 5}, "- input.ref: "),
                ("run_gated", {}, "- input: 'ref' is a required property"),
                ("search_memory", {"q": ""}, "- q: "),
                ("list_approvals", {"priority": "soon"}, "- priority: "),
                ("no_such_tool", {}, "not_found: no tool named 'no_such_tool'"),
            ]
            for name, args, expected in cases:
                got = await mcp.call_tool(name, args)
                assert got.is_error and expected in text(got), (name, args, text(got))
                assert "internal" not in text(got)
            for uri, expected in (
                ("stepgate://runs/no-such-run", "not_found"),
                ("stepgate://elsewhere/x", "uri: not a run's status"),
            ):
                with pytest.raises(MCPError, match=expected):
                    await mcp.read_resource(uri)
        # Arguments are bounded as every body is, before MCP reads them: 64 levels of nesting.
        deep: Any = "x"
        for _ in range(100):
            deep = {"a": deep}
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_run"}}
        call["params"]["arguments"] = {"workflow_id": deep}  # type: ignore[index]
        r = await http.post("/mcp", json=call, headers=as_("olga"))
        assert r.status_code == 422 and "nested" in r.text, r.text


async def test_pipeline_tools_follow_reloads_with_safe_bounded_names(
    serve: Serve, api_settings: Settings, definitions: Path, keys: dict[str, str], as_: Auth
) -> None:
    """A pipeline added to the catalog appears as a tool at the next tools/list after a reload,
    its name made safe for every client (`ops.restart` -> `run_ops_restart_<hash>`) and its
    schema the pipeline's input schema; removed, it is gone, and calling it is refused."""
    async with serve(api_settings) as url, httpx.AsyncClient(base_url=url) as http:
        async with over_http(url, keys["olga"]) as mcp:
            before = {t.name for t in (await mcp.list_tools()).tools}
            (definitions / "ops_restart.yaml").write_text(DOTTED)
            r = await http.post("/definitions/reload", headers=as_("root"))
            assert r.status_code == 200 and "ops.restart@3" in r.json()["added"], r.text
            tools = {t.name: t for t in (await mcp.list_tools()).tools}
            added = set(tools) - before
            assert len(added) == 1, added
            name = added.pop()
            assert name.startswith("run_ops_restart_") and len(name) <= 64, name
            assert tools[name].input_schema["properties"]["host"]["maxLength"] == 64
            too_long = await mcp.call_tool(name, {"host": "h" * 65})
            assert too_long.is_error and "- input.host: " in text(too_long), text(too_long)
            (definitions / "ops_restart.yaml").unlink()
            assert (await http.post("/definitions/reload", headers=as_("root"))).status_code == 200
            assert name not in {t.name for t in (await mcp.list_tools()).tools}
            gone = await mcp.call_tool(name, {"host": "web-1"})
            assert gone.is_error and "not_found" in text(gone)


async def test_a_session_is_its_principal_s_alone(
    serve: Serve, api_settings: Settings, keys: dict[str, str]
) -> None:
    """An MCP session opened with bob's key answers 404 to alice's key, as if it did not exist,
    and each principal may hold only so many sessions at once (429 past the bound)."""
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}

    def auth(who: str) -> dict[str, str]:
        return {**accept, "Authorization": f"Bearer {keys[who]}"}

    async with serve(api_settings) as url, httpx.AsyncClient(base_url=url) as http:
        opened = await http.post("/mcp", json=init, headers=auth("bob"))
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        own = await http.post("/mcp", json=ping, headers={**auth("bob"), "mcp-session-id": session})
        assert own.status_code == 200, own.text
        other = await http.post(
            "/mcp", json=ping, headers={**auth("alice"), "mcp-session-id": session}
        )
        assert other.status_code == 404, other.text
        for _ in range(MAX_SESSIONS_PER_PRINCIPAL - 1):
            assert (await http.post("/mcp", json=init, headers=auth("bob"))).status_code == 200
        refused = await http.post("/mcp", json=init, headers=auth("bob"))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_sessions"
        ended = await http.delete("/mcp", headers={**auth("bob"), "mcp-session-id": session})
        assert ended.status_code == 200, ended.text
        assert (await http.post("/mcp", json=init, headers=auth("bob"))).status_code == 200
