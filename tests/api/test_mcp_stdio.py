"""`stepgate mcp` over stdio, spawned as a process of its own against the API the test serves,
driven by the SDK's own client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from mcp_types import ElicitRequestParams, ElicitRequestURLParams, ElicitResult

from activities.config import Settings
from tests.api.conftest import Serve
from tests.api.helpers import eventually
from tests.support.mcp import DORA, allow_mcp_decisions, data, over_stdio, recorder, text

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
async def served(
    serve: Serve, api_settings: Settings, tmp_path: Path, team: str, worker: None
) -> AsyncIterator[str]:
    async with serve(allow_mcp_decisions(api_settings, tmp_path, team)) as url:
        yield url


async def test_stdio_permitted_key_decides_and_others_are_sent_to_the_page(
    served: str, keys: dict[str, str], as_: Auth
) -> None:
    """Over stdio: dora (decide_via_mcp) starts `gated`, sees its gate in her approvals,
    decides it (audited as come through MCP) and sees the run complete; bob (no such permission) is not offered `decide`,
    is refused it, is sent to the gate's page by review_gate, and his in-band "approve"
    decides nothing; vic (a viewer) is refused a start."""
    async with over_stdio(served, DORA) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"decide", "review_gate", "run_gated", "start_run", "get_run"} <= names
        workflow_id = data(await mcp.call_tool("run_gated", {"ref": "main"}))["workflow_id"]
        await eventually(
            lambda: mcp.call_tool("list_approvals", {}),
            lambda r: any(i["workflow_id"] == workflow_id for i in data(r)["items"]),
            "the gate in dora's approvals",
        )
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
        audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("vic"))).json()
        # The route takes `mcp` alone as a declared channel: anything else is a 422 naming it.
        bad = await http.post(
            f"/workflows/{workflow_id}/gates/release",
            json={"action": "approve"},
            headers={**as_("vic"), "Stepgate-Channel": "slack"},
        )
    (decision,) = [e for e in audit["entries"] if e["kind"] == "decision"]
    assert (decision["actor"], decision["channel"]) == ("dora", "mcp"), decision
    assert bad.status_code == 422 and "Stepgate-Channel" in bad.text, bad.text

    asked: list[ElicitRequestParams] = []
    in_band = ElicitResult(action="accept", content={"action": "approve"})
    async with over_stdio(served, keys["bob"], elicitation=recorder(in_band, asked)) as mcp:
        assert "decide" not in {t.name for t in (await mcp.list_tools()).tools}
        workflow_id = data(await mcp.call_tool("run_gated", {"ref": "main"}))["workflow_id"]
        await eventually(
            lambda: mcp.call_tool("get_run", {"workflow_id": workflow_id}),
            lambda r: data(r)["state"] == "waiting",
            "the run waits at its gate",
        )
        args = {"workflow_id": workflow_id, "gate": "release"}
        refused = await mcp.call_tool("decide", {**args, "action": "approve"})
        assert refused.is_error and "decide_via_mcp" in text(refused)
        got = data(await mcp.call_tool("review_gate", args))
    page = f"{served}/ui/runs/{workflow_id}/gates/release"
    assert [type(a) for a in asked] == [ElicitRequestURLParams]
    assert asked[0].url == page == got["page"]  # type: ignore[union-attr]
    assert got["decided_here"] is False and got["gate"]["state"] == "open", got
    async with httpx.AsyncClient(base_url=served) as http:
        gates = (await http.get(f"/workflows/{workflow_id}/gates", headers=as_("bob"))).json()
    assert (gates["entries"][0]["state"], gates["entries"][0]["approvals"]) == ("open", [])

    async with over_stdio(served, keys["vic"]) as mcp:
        refused = await mcp.call_tool("run_gated", {"ref": "main"})
        assert refused.is_error and "forbidden" in text(refused), text(refused)
