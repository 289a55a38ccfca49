"""Agent call gates over HTTP: in the inbox like any gate, decided one by one or in a batch, a
patch of the call's arguments only (422 otherwise, and for arguments the tool refuses), grants
with approve at a call gate only, revoked by their granter or an admin, and the calls page."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from activities.registry import ToolRegistry
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.support import fakes
from tests.support.api import stepgate as cli
from tests.support.fakes import OPS_TOOLS, echo, sleep
from tests.tools.chat import ScriptedAgent, serving
from worker import build_worker

Auth = Callable[[str], dict[str, str]]


def agent(team: str) -> dict[str, Any]:
    """An inline triage agent whose restarts the test's team decides."""
    return {
        "name": "triage_http",
        "input": {"type": "object", "properties": {"ref": {"type": "string"}}},
        "steps": [
            {
                "id": "triage",
                "agent": {
                    "instructions": "triage",
                    "input": "${input.ref}",
                    "tools": [
                        "ops.read",
                        {"tool": "ops.restart", "approval": {"approvers": [f"role:{team}"]}},
                    ],
                },
            }
        ],
    }


@pytest.fixture
def model() -> Iterator[ScriptedAgent]:
    with serving(ScriptedAgent("done")) as scripted:
        yield scripted


@pytest.fixture
def registry() -> ToolRegistry:
    tools = default_registry(entry_points=False)
    for t in (echo, sleep, *OPS_TOOLS):
        tools.add(t)
    return tools


@pytest.fixture
def api_settings(api_settings: Settings, model: ScriptedAgent) -> Settings:
    """The API and the worker both pointed at the model: the API refuses to start an agent
    without an LLM endpoint of its own."""
    return api_settings.model_copy(
        update={"stepgate_llm_base_url": model.url, "stepgate_llm_model": "scripted"}
    )


@pytest.fixture
async def worker(
    client: Client, api_settings: Settings, registry: ToolRegistry
) -> AsyncIterator[None]:
    fakes.CALLS.clear()
    async with build_worker(client, api_settings, registry):
        yield


async def started(start_run: StartRun, team: str, model: ScriptedAgent, *turns: Any) -> str:
    model.replies = [*turns, "done"]
    return await start_run(agent(team), {"ref": "api"}, who="root")


async def test_call_gates_are_in_the_inbox_and_decided_over_http(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, team: str, model: ScriptedAgent
) -> None:
    """The call gate is in its approver's inbox with its subject; a modify of its arguments is
    applied and the call runs with them; the calls page lists what ran."""
    wid = await started(start_run, team, model, [("ops_restart", {"service": "api"})])

    async def inbox() -> Any:
        return (await http.get("/approvals", headers=as_("alice"))).json()["items"]

    items = await eventually(inbox, lambda i: any(x["workflow_id"] == wid for x in i), "inbox")
    (item,) = [x for x in items if x["workflow_id"] == wid]
    assert item["gate"] == "triage.call-1"
    assert item["subject"] == {
        "tool": "ops.restart",
        "version": "1.0.0",
        "arguments": {"service": "api"},
    }
    assert item["actions"] == ["approve", "reject", "modify", "cancel"]
    r = await http.post(
        f"/workflows/{wid}/gates/triage.call-1",
        json={"action": "modify", "patch": {"arguments": {"mode": "hard"}}},
        headers=as_("alice"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "modified"
    await wait_state(http, wid, "completed", as_("vic"))
    page = (await http.get(f"/workflows/{wid}/steps/triage/calls", headers=as_("vic"))).json()
    assert page["total"] == 1
    (call,) = page["entries"]
    assert (call["gate"], call["decision"], call["state"], call["changed"]) == (
        "triage.call-1",
        "approve",
        "succeeded",
        True,
    )
    assert call["arguments"] == {"service": "api", "mode": "hard"} and call["deciders"] == ["alice"]


async def test_parallel_call_gates_decided_in_one_batch(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, team: str, model: ScriptedAgent
) -> None:
    """Two calls of one turn, each with its gate, are decided in one batch request."""
    wid = await started(
        start_run,
        team,
        model,
        [("ops_restart", {"service": "a"}), ("ops_restart", {"service": "b"})],
    )

    async def gates() -> Any:
        return (await http.get(f"/workflows/{wid}/gates?state=open", headers=as_("vic"))).json()

    await eventually(gates, lambda p: p["total"] == 2, "both gates open")
    body = {
        "items": [
            {"workflow_id": wid, "gate": "triage.call-1", "action": "approve"},
            {"workflow_id": wid, "gate": "triage.call-2", "action": "reject", "comment": "one"},
        ]
    }
    r = await http.post("/approvals/batch", json=body, headers=as_("alice"))
    assert r.status_code == 200, r.text
    assert [x["gate_state"] for x in r.json()["results"]] == ["approved", "rejected"]
    await wait_state(http, wid, "completed", as_("vic"))
    assert [a["service"] for n, a, _ in fakes.CALLS if n == "ops.restart"] == ["a"]


async def test_call_gate_refuses_patches_and_grants_it_does_not_take(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, team: str, model: ScriptedAgent
) -> None:
    """422 for a patch that names anything but the arguments, for arguments the tool refuses
    (checked when sent), for a grant with another action or a malformed grant; the gate stays
    open and the call has not run."""
    wid = await started(start_run, team, model, [("ops_restart", {"service": "api"})])
    await wait_state(http, wid, "waiting", as_("vic"))
    url = f"/workflows/{wid}/gates/triage.call-1"
    cases = [
        ({"action": "modify", "patch": {"tool": "shell.run"}}, "bad_patch", "the patch is"),
        (
            {"action": "modify", "patch": {"arguments": {"mode": "nuke"}}},
            "bad_patch",
            "arguments.mode",
        ),
        ({"action": "reject", "grant": {"calls": 2}}, "bad_grant", "not reject"),
        ({"action": "approve", "grant": {"expires_in": "48h"}}, "invalid", "at most 24h"),
        ({"action": "approve", "grant": {"calls": 0}}, "invalid", "greater than or equal"),
        ({"action": "approve", "grant": {"calls": "2"}}, "invalid", "grant.calls"),
        ({"action": "approve", "grant": {"same_arguments": 0}}, "invalid", "same_arguments"),
    ]
    for body, code, said in cases:
        r = await http.post(url, json=body, headers=as_("alice"))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["code"] == code and said in r.text, r.text
    status = (await http.get(f"/workflows/{wid}", headers=as_("vic"))).json()
    assert [g["gate"] for g in status["open_gates"]] == ["triage.call-1"]
    assert fakes.CALLS == []


async def test_a_grant_at_a_step_gate_is_refused(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun
) -> None:
    """A grant goes with call gates only: at a step's own gate it is a 422 bad_grant."""
    wid = await start_run()
    await wait_state(http, wid, "waiting", as_("vic"))
    r = await http.post(
        f"/workflows/{wid}/gates/release",
        json={"action": "approve", "grant": {"expires_in": "1h"}},
        headers=as_("alice"),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_grant", r.text


async def test_grants_are_shown_and_revoked_by_their_granter_or_an_admin(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, team: str, model: ScriptedAgent
) -> None:
    """A grant made with an approval is in the status; another approver may not revoke it (403),
    its granter may (200, then 409 again), an unknown grant is a 404; an admin may revoke any."""
    restart = [("ops_restart", {"service": "api"})]
    wid = await started(start_run, team, model, restart, restart)
    await wait_state(http, wid, "waiting", as_("vic"))
    r = await http.post(
        f"/workflows/{wid}/gates/triage.call-1",
        json={"action": "approve", "grant": {"expires_in": "2h", "calls": 1}},
        headers=as_("alice"),
    )
    assert r.status_code == 200, r.text
    await wait_state(http, wid, "completed", as_("vic"))
    status = (await http.get(f"/workflows/{wid}", headers=as_("vic"))).json()
    assert [(g["id"], g["used"], g["state"]) for g in status["grants"]] == [("g1", 1, "used")]

    other = [("ops_restart", {"service": "db"})]
    wid = await started(start_run, team, model, restart, restart, other)
    await wait_state(http, wid, "waiting", as_("vic"))
    await http.post(
        f"/workflows/{wid}/gates/triage.call-1",
        json={"action": "approve", "grant": {"expires_in": "2h", "same_arguments": True}},
        headers=as_("alice"),
    )

    async def gates() -> Any:
        return (await http.get(f"/workflows/{wid}/gates?state=open", headers=as_("vic"))).json()

    # The same arguments pass under the grant; others wait at their gate (the run stays open).
    await eventually(gates, lambda p: [g["gate"] for g in p["entries"]] == ["triage.call-3"], "")
    url = f"/workflows/{wid}/grants/g1"
    r = await http.request("DELETE", url, headers=as_("carol"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_authorized", r.text
    r = await http.request("DELETE", url, json={"reason": "done"}, headers=as_("alice"))
    assert r.status_code == 200 and r.json()["state"] == "revoked", r.text
    assert r.json()["revoked_by"] == "alice"
    r = await http.request("DELETE", url, headers=as_("root"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "grant_not_active"
    r = await http.request("DELETE", f"/workflows/{wid}/grants/g7", headers=as_("root"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_grant", r.text
    r = await http.request("DELETE", f"/workflows/{wid}/grants/x", headers=as_("root"))
    assert r.status_code == 422


async def test_calls_page_refuses_what_is_not_an_agent_step(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun
) -> None:
    """The calls page of a step that is not an agent is a 404; a cursor that is not a call
    number a 422."""
    wid = await start_run()
    await wait_state(http, wid, "waiting", as_("vic"))
    r = await http.get(f"/workflows/{wid}/steps/release/calls", headers=as_("vic"))
    assert r.status_code == 404 and "not an agent step" in r.text
    r = await http.get(f"/workflows/{wid}/steps/release/calls?cursor=x", headers=as_("vic"))
    assert r.status_code == 422


async def test_an_agent_whose_risky_calls_no_one_may_decide_is_refused(
    http: httpx.AsyncClient, as_: Auth, team: str
) -> None:
    """Validation names the tool entry whose calls could wait at a gate with no approvers, and
    a `when` that reads anything but the call's arguments."""
    bad = copy.deepcopy(agent(team))
    bad["steps"][0]["agent"]["tools"] = [
        "ops.restart",
        {"tool": "ops.read", "policy": "auto", "when": "input.ref == 'x'"},
    ]
    r = await http.post("/definitions/validate", json=bad, headers=as_("vic"))
    errors = {e["path"]: e["message"] for e in r.json()["errors"]}
    assert "no one is named to decide them" in errors["steps[0].agent.tools[0]"]
    assert "`when` reads the call's arguments only" in errors["steps[0].agent.tools[1].when"]


async def test_cli_approves_a_call_with_a_grant_and_revokes_it(
    http: httpx.AsyncClient,
    as_: Auth,
    keys: dict[str, str],
    start_run: StartRun,
    team: str,
    model: ScriptedAgent,
) -> None:
    """`stepgate approve ... --grant 1h --grant-calls 3 --same-arguments` approves the call with
    a grant, which `stepgate revoke` ends."""
    turns = [("ops_restart", {"service": "api"})], [("ops_restart", {"service": "db"})]
    wid = await started(start_run, team, model, *turns)
    await wait_state(http, wid, "waiting", as_("vic"))
    url = str(http.base_url).rstrip("/")
    grant = ("--grant", "1h", "--grant-calls", "3", "--same-arguments")
    code, out, err = await cli(url, keys["alice"], "approve", wid, "triage.call-1", *grant)
    assert code == 0, err
    assert json.loads(out)["approvals"][0]["grant"] == {
        "same_arguments": True,
        "expires_in": "1h",
        "calls": 3,
    }
    code, out, err = await cli(url, keys["alice"], "revoke", wid, "g1", "--reason", "enough")
    assert code == 0, err
    assert json.loads(out)["state"] == "revoked"
