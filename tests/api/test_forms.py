"""Typed reviewer forms through the API: a gate's form in the inbox and the gate view, a
decision's response checked against it (422 naming the field), the answers used by the next
step, and a form outside the subset refused naming the keyword."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.support.api import stepgate as cli

Auth = Callable[[str], dict[str, str]]

FORM = {
    "type": "object",
    "required": ["ticket", "risk"],
    "properties": {
        "ticket": {"type": "string", "title": "Change ticket", "minLength": 3},
        "risk": {"type": "string", "enum": ["low", "high"]},
        "hosts": {"type": "integer", "minimum": 1, "default": 2},
    },
}


def answered(team: str, form: Any = FORM) -> dict[str, Any]:
    return {
        "name": "answered",
        "steps": [
            {
                "id": "review",
                "tool": "test.echo",
                "with": {"what": "deploy"},
                "approval": {"approvers": [f"role:{team}"], "form": form},
            },
            {
                "id": "use",
                "tool": "test.echo",
                "needs": ["review"],
                "with": {
                    "ticket": "${steps.review.gate.response.ticket}",
                    "hosts": "${steps.review.gate.response.hosts}",
                    "line": "risk ${steps.review.gate.response.risk}",
                },
            },
        ],
        "output": {"used": "${steps.use.output}"},
    }


async def test_a_form_answered_reaches_the_next_step(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """The inbox and the gate view carry the form; a response that does not answer it is a 422
    naming the field, one that does is kept (defaults filled in) on the gate, in the audit, and
    read by the next step."""
    workflow_id = await start_run(answered(team), {}, who="root")
    status = await wait_state(http, workflow_id, "waiting", as_("vic"))
    assert status["open_gates"][0]["form"] == FORM

    async def inbox() -> list[dict[str, Any]]:
        r = await http.get("/approvals", params={"requester": "root"}, headers=as_("alice"))
        assert r.status_code == 200, r.text
        return [i for i in r.json()["items"] if i["workflow_id"] == workflow_id]

    (item,) = await eventually(inbox, lambda items: len(items) == 1, "inbox line")
    assert item["form"] == FORM and item["requester"] == "root"
    gate = f"/workflows/{workflow_id}/gates/review"
    r = await http.post(
        gate, json={"action": "approve", "response": {"ticket": "CHG-1"}}, headers=as_("alice")
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_response"), r.text
    assert r.json()["error"]["message"] == "response.risk: is required by the gate's form"
    r = await http.post(gate, json={"action": "approve"}, headers=as_("alice"))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_response"), r.text
    r = await http.post(
        gate,
        json={"action": "approve", "response": {"ticket": "CHG-1", "risk": "medium"}},
        headers=as_("alice"),
    )
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("response.risk: ")
    r = await http.post(
        gate,
        json={"action": "approve", "response": {"ticket": "CHG-1", "risk": "high"}},
        headers=as_("alice"),
    )
    assert r.status_code == 200, r.text
    kept = {"ticket": "CHG-1", "risk": "high", "hosts": 2}
    assert r.json()["response"] == kept and r.json()["form"] == FORM
    done = await wait_state(http, workflow_id, "completed", as_("vic"))
    assert done["output"]["used"] == {
        "ticket": "CHG-1",
        "hosts": 2,
        "line": "risk high",
        "step": "use",
    }
    audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("vic"))).json()
    decisions = [e for e in audit["entries"] if e["kind"] == "decision"]
    assert [e.get("response") for e in decisions] == [kept]  # refused updates leave no trace


async def test_a_response_is_refused_where_the_gate_has_no_form(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """A response at a gate without a form is a 422; one outside the documented shape (a nested
    value, a name no form could have) is refused before it reaches the run."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    gate = f"/workflows/{workflow_id}/gates/release"
    r = await http.post(
        gate, json={"action": "approve", "response": {"a": 1}}, headers=as_("alice")
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_response"), r.text
    assert "has no form" in r.json()["error"]["message"]
    for bad in ({"a": {"b": 1}}, {"a-b": 1}, {"a": None}, {"a": "x" * 2_001}, {"a": "0" * 2_001}):
        r = await http.post(gate, json={"action": "approve", "response": bad}, headers=as_("alice"))
        assert r.status_code == 422, bad
        assert any("response" in str(d.get("path")) for d in r.json()["error"]["details"]), r.text


async def test_a_form_outside_the_subset_is_refused_naming_the_keyword(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """Starting (or validating) a definition whose form uses `$ref` is a 422 naming the keyword
    and its path."""
    form = {**FORM, "properties": {**FORM["properties"], "ticket": {"$ref": "#/defs/t"}}}
    bad = answered(team, form)
    r = await http.post("/workflows", json={"definition": bad, "input": {}}, headers=as_("root"))
    assert r.status_code == 422, r.text
    messages = [f"{d['path']}: {d['message']}" for d in r.json()["error"]["details"]]
    assert messages == [
        "definition.steps[0].approval.form.properties.ticket.type: a field's type is one of "
        "string, number, integer, boolean"
    ]  # alone: the step's reference to the form is not reported as well
    form = {
        **FORM,
        "properties": {**FORM["properties"], "ticket": {"type": "string", "$ref": "#/t"}},
    }
    r = await http.post("/definitions/validate", json=answered(team, form), headers=as_("vic"))
    assert r.status_code == 200
    assert {
        "path": "steps[0].approval.form.properties.ticket.$ref",
        "message": 'keyword "$ref" is not allowed in a gate form',
    } in r.json()["errors"]


async def test_inbox_lists_requester_quorum_votes_and_filters(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """Inbox items name who started the run, the approvers, the quorum and who voted what so
    far; `pipeline=` and `requester=` keep only the matching runs' gates."""
    two = {
        "name": f"quorum_{team}",
        "steps": [
            {
                "id": "go",
                "tool": "test.echo",
                "approval": {"approvers": [f"role:{team}"], "quorum": 2},
            }
        ],
    }
    mine = await start_run(two, {}, who="root")
    other = await start_run()  # the catalog's `gated`, started by olga
    for wid in (mine, other):
        await wait_state(http, wid, "waiting", as_("vic"))
    r = await http.post(
        f"/workflows/{mine}/gates/go", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200, r.text

    async def inbox(**params: str) -> list[dict[str, Any]]:
        r = await http.get("/approvals", params=params, headers=as_("bob"))
        assert r.status_code == 200, r.text
        return [i for i in r.json()["items"] if i["workflow_id"] in (mine, other)]

    items = await eventually(
        inbox,
        lambda i: {x["workflow_id"] for x in i} == {mine, other} and any(x["votes"] for x in i),
        "both in the inbox, the vote shown",
    )
    (line,) = [i for i in items if i["workflow_id"] == mine]
    assert line["requester"] == "root" and line["approvers"] == [f"role:{team}"]
    assert (line["quorum"], line["approvals"], line["votes_total"]) == (2, 1, 1)
    assert line["votes"] == [{"principal": "alice", "action": "approve"}]
    assert [i["workflow_id"] for i in await inbox(requester="root")] == [mine]
    assert [i["workflow_id"] for i in await inbox(requester="olga")] == [other]
    assert [i["workflow_id"] for i in await inbox(pipeline=f"quorum_{team}")] == [mine]
    assert [i["workflow_id"] for i in await inbox(pipeline="gated", requester="root")] == []
    for bad in ({"requester": "a b"}, {"requester": "x" * 201}, {"pipeline": "a/b"}):
        r = await http.get("/approvals", params=bad, headers=as_("bob"))
        assert r.status_code == 422, bad


async def test_batch_items_carry_responses(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """Each batch item's response is checked against its own gate's form: the good one is
    applied, the bad one is a 422 naming the field, the other items unaffected."""
    ids = [await start_run(answered(team), {}, who="root") for _ in range(2)]
    for wid in ids:
        await wait_state(http, wid, "waiting", as_("vic"))
    good = {"ticket": "CHG-2", "risk": "low"}
    r = await http.post(
        "/approvals/batch",
        json={
            "items": [
                {"workflow_id": ids[0], "gate": "review", "action": "approve", "response": good},
                {"workflow_id": ids[1], "gate": "review", "action": "approve", "response": {}},
            ]
        },
        headers=as_("alice"),
    )
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert (first["ok"], first["gate_state"]) == (True, "approved")
    assert (second["status_code"], second["error"]["code"]) == (422, "bad_response")
    assert second["error"]["message"].startswith("response.ticket: is required")
    done = await wait_state(http, ids[0], "completed", as_("vic"))
    assert done["output"]["used"]["ticket"] == "CHG-2"


async def test_cli_answers_a_form_and_lists_who_voted(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str, keys: dict[str, str]
) -> None:
    """`stepgate inbox` shows the requester and quorum progress; `stepgate approve --response`
    sends the answers (a bad one is the API's 422 naming the field, exit 1)."""
    url = str(http.base_url).rstrip("/")
    workflow_id = await start_run(answered(team), {}, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))

    async def inbox() -> str:
        return (await cli(url, keys["alice"], "inbox", "--requester", "root"))[1]

    listed = await eventually(inbox, lambda text: workflow_id in text, "inbox")
    (line,) = [row for row in listed.splitlines() if workflow_id in row]
    assert " root " in line and " 0/1 " in line and line.endswith("[form]")
    code, _, err = await cli(
        url, keys["alice"], "approve", workflow_id, "review", "--response", '{"ticket": "x"}'
    )
    assert code == 1 and "HTTP 422 bad_response: response.ticket: at least 3" in err, err
    answers = '{"ticket": "CHG-9", "risk": "low"}'
    code, out, err = await cli(
        url, keys["alice"], "approve", workflow_id, "review", "--response", answers
    )
    assert code == 0, err
    assert json.loads(out)["response"] == {"ticket": "CHG-9", "risk": "low", "hosts": 2}
    done = await wait_state(http, workflow_id, "completed", as_("vic"))
    assert done["output"]["used"]["ticket"] == "CHG-9"
