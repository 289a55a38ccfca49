"""Gate decisions through the submit_decision update."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.api.conftest import StartRun
from tests.api.helpers import wait_state

Auth = Callable[[str], dict[str, str]]


async def test_decide_gate_as_approver_approved(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """An approver's decision returns the gate view, with the actor taken from the key."""
    workflow_id = await start_run()
    status = await wait_state(http, workflow_id, "waiting", as_("vic"))
    digest = status["open_gates"][0]["digest"]
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release",
        json={"action": "approve", "comment": "ship it", "digest": digest},
        headers=as_("alice"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    assert r.json()["decided_by"] == "alice"
    await wait_state(http, workflow_id, "completed", as_("vic"))
    again = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("bob")
    )
    assert again.status_code == 409


async def test_decide_gate_refusals_mapped(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Refusals map to 403, 404, 409 and 422 by their type."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    gate = f"/workflows/{workflow_id}/gates/release"
    cases = [
        (as_("vic"), {"action": "approve"}, 403, "not_authorized"),
        (as_("alice"), {"action": "retry"}, 422, "action_not_allowed"),
        (as_("alice"), {"action": "approve", "patch": {"x": 1}}, 422, "bad_patch"),
        (as_("alice"), {"action": "approve", "digest": "sha256:nope"}, 409, "digest_mismatch"),
    ]
    for headers, body, code, kind in cases:
        r = await http.post(gate, json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (code, kind), body
    r = await http.post(
        f"/workflows/{workflow_id}/gates/prepare", json={"action": "approve"}, headers=as_("alice")
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_gate")
    r = await http.post(
        "/workflows/no-such-run/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 404
    r = await http.post(gate, json={"action": "approve", "actor": "root"}, headers=as_("alice"))
    assert r.status_code == 422  # the body cannot name an actor
    r = await http.post(gate, json={"action": "approve"})
    assert r.status_code == 401


async def test_decide_gate_twice_already_voted(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """With a quorum of two, a second vote by the same person is a 409."""
    inline = {
        "name": "quorum_two",
        "steps": [
            {
                "id": "go",
                "tool": "test.echo",
                "approval": {"approvers": [f"role:{team}"], "quorum": 2},
            }
        ],
    }
    workflow_id = await start_run(inline, {}, who="root")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    gate = f"/workflows/{workflow_id}/gates/go"
    first = await http.post(gate, json={"action": "approve"}, headers=as_("alice"))
    assert first.json()["state"] == "open"
    second = await http.post(gate, json={"action": "approve"}, headers=as_("alice"))
    assert (second.status_code, second.json()["error"]["code"]) == (409, "already_voted")
    third = await http.post(gate, json={"action": "approve"}, headers=as_("bob"))
    assert third.json()["state"] == "approved"


SELF_GUARDED = {
    "name": "selfguard",
    "steps": [
        {
            "id": "pay",
            "tool": "test.echo",
            "with": {"amount": 10},
            "approval": {
                "stage": "after",
                "approvers": ["role:admin"],
                "forbid_self_approval": True,
            },
        },
        {
            "id": "broken",
            "tool": "test.fail",
            "approval": {
                "stage": "on_failure",
                "approvers": ["role:admin"],
                "forbid_self_approval": True,
            },
        },
    ],
}


async def test_requester_retry_and_skip_forbidden_under_self_approval_ban(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """The requester cannot re-send their call with a bigger amount (retry at an after gate) nor
    skip a failure with a substitute output: both are 403 self_approval; stopping stays open."""
    workflow_id = await start_run(SELF_GUARDED, {}, who="root")

    async def both_open() -> bool:
        status = (await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))).json()
        return {g["gate"] for g in status["open_gates"]} == {"pay", "broken"}

    from tests.support.util import eventually

    await eventually(both_open, what="both gates open")
    attempts = [
        ("pay", {"action": "retry", "patch": {"amount": 1_000_000}}),
        ("pay", {"action": "retry"}),
        ("pay", {"action": "approve"}),
        ("broken", {"action": "skip", "patch": {"substitute": True}}),
        ("broken", {"action": "retry"}),
    ]
    for gate, body in attempts:
        r = await http.post(
            f"/workflows/{workflow_id}/gates/{gate}", json=body, headers=as_("root")
        )
        assert (r.status_code, r.json()["error"]["code"]) == (403, "self_approval"), (
            gate,
            body,
            r.text,
        )
    r = await http.post(
        f"/workflows/{workflow_id}/gates/pay", json={"action": "reject"}, headers=as_("root")
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
