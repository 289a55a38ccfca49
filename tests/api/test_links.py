"""Signed links over real HTTP against a real worker: opening a link (GET) decides nothing, its
page's POST decides once as the link's principal, and every way a link can be wrong is refused
with a page naming why: tampered, unknown key, expired, used, gate closed, subject or round
changed, a browser signed in as someone else, a principal without an active key, a post from
elsewhere. The token never reaches the log."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml

from activities.config import Settings
from tests.api.conftest import StartRun, write_keys
from tests.api.helpers import eventually, wait_state
from tests.api.test_ui_session import sign_in
from tests.support.channels import LINK_KEY, OLD_KEY, channel_settings, link_for

pytestmark = pytest.mark.asyncio
Auth = Callable[[str], dict[str, str]]


@pytest.fixture
def keys(tmp_path: Path, team: str) -> dict[str, str]:
    """The API tests' keys, and dave, who holds no role of the team (a delegate)."""
    found = write_keys(tmp_path / "keys.yaml", team)
    entries = yaml.safe_load((tmp_path / "keys.yaml").read_text())
    entries.append({"key": "key-dave-0123456789", "principal": "dave", "roles": ["viewer"]})
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump(entries))
    return {**found, "dave": "key-dave-0123456789"}


@pytest.fixture
def api_settings(
    settings: Settings, tmp_path: Path, keys: dict[str, str], definitions: Path
) -> Settings:
    """A link key, and an address book in which alice is away and delegates to dave."""
    base = settings.model_copy(
        update={
            "stepgate_api_keys_file": tmp_path / "keys.yaml",
            "stepgate_definitions_dir": definitions,
        }
    )
    book = {
        "alice": {"delegate": {"to": "dave", "until": "2999-01-01T00:00:00Z"}},
        "dave": {"email": "dave@example.com"},
    }
    return channel_settings(base, tmp_path, book)


def quorum_two(team: str) -> dict[str, Any]:
    return {
        "name": "twokeys",
        "input": {"type": "object"},
        "steps": [
            {
                "id": "release",
                "tool": "test.echo",
                "with": {"ref": "x"},
                "approval": {"approvers": [f"role:{team}"], "quorum": 2},
            }
        ],
    }


async def gate_of(http: httpx.AsyncClient, workflow_id: str, auth: Auth) -> dict[str, Any]:
    """The run's open gate, once it has one (as the status shows it)."""

    async def probe() -> list[dict[str, Any]]:
        status = (await http.get(f"/workflows/{workflow_id}", headers=auth("root"))).json()
        return list(status.get("open_gates", []))

    gates = await eventually(probe, bool, f"{workflow_id} at its gate")
    return dict(gates[0])


def own_origin(http: httpx.AsyncClient) -> dict[str, str]:
    return {"Origin": str(http.base_url).rstrip("/")}


async def post_link(
    http: httpx.AsyncClient, token: str, action: str = "approve", **extra: str
) -> httpx.Response:
    return await http.post(
        f"/ui/links/{token}", data={"action": action, **extra}, headers=own_origin(http)
    )


def refusal(page: httpx.Response) -> str:
    """The code a refusal page names (data-code)."""
    marker = 'data-code="'
    assert marker in page.text, page.text[:500]
    return page.text.split(marker, 1)[1].split('"', 1)[0]


async def test_a_get_decides_nothing_and_the_post_decides_once(
    http: httpx.AsyncClient,
    start_run: StartRun,
    api_settings: Settings,
    as_: Auth,
    team: str,
) -> None:
    """Two GETs (a mail scanner, then the person) show the gate and its buttons and leave it
    open; the page's POST records alice's vote; the link is then refused as used, and the gate
    still waits for a second approver. The token is nowhere in the page or the log."""
    workflow_id = await start_run(quorum_two(team), {}, who="root")
    gate = await gate_of(http, workflow_id, as_)
    token = link_for(api_settings, gate, workflow_id, "alice")
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            page = await http.get(f"/ui/links/{token}")
            assert page.status_code == 200, page.text
            assert 'name="action" value="approve"' in page.text
            assert token not in page.text
            assert page.headers["referrer-policy"] == "same-origin"
            assert page.headers["cache-control"] == "no-store"
            still = await gate_of(http, workflow_id, as_)
            assert still["approvals"] == [] and still["state"] == "open"
        done = await post_link(http, token, comment="fine by me")
        assert done.status_code == 200, done.text
        assert "was recorded" in done.text and token not in done.text
        again = await http.get(f"/ui/links/{token}")
        assert (again.status_code, refusal(again)) == (409, "link_used")
        replay = await post_link(http, token)
        assert (replay.status_code, refusal(replay)) == (409, "link_used")
    gate = await gate_of(http, workflow_id, as_)
    assert [v["actor"] for v in gate["approvals"]] == ["alice"]
    assert gate["state"] == "open"
    text = repr(logs)
    assert token not in text and LINK_KEY not in text
    assert any(e.get("path") == "/ui/links/…" for e in logs)


async def test_the_link_decides_and_the_run_goes_on_then_it_is_refused_as_closed(
    http: httpx.AsyncClient, start_run: StartRun, api_settings: Settings, as_: Auth
) -> None:
    """At a quorum of one the link's approve lets the run complete; the link then says the gate
    is closed, and who decided it."""
    workflow_id = await start_run(inp={"ref": "l1"})
    gate = await gate_of(http, workflow_id, as_)
    token = link_for(api_settings, gate, workflow_id, "bob")
    assert (await post_link(http, token)).status_code == 200
    await wait_state(http, workflow_id, "completed", as_("root"))
    closed = await http.get(f"/ui/links/{token}")
    assert (closed.status_code, refusal(closed)) == (409, "gate_closed")
    assert "decided by bob" in closed.text


async def test_tampered_unknown_key_expired_and_cross_gate_links_are_refused(
    http: httpx.AsyncClient, start_run: StartRun, api_settings: Settings, as_: Auth
) -> None:
    """A token altered anywhere, signed with a key the API does not hold, expired, or bound to
    another round or subject: each GET and POST is refused with its reason, the gate untouched."""
    workflow_id = await start_run(inp={"ref": "l2"})
    gate = await gate_of(http, workflow_id, as_)
    good = link_for(api_settings, gate, workflow_id, "alice")
    kid, payload, sig = good.split(".")
    flipped = "A" if payload[5] != "A" else "B"
    tampered = {
        "payload": f"{kid}.{payload[:5]}{flipped}{payload[6:]}.{sig}",
        "signature": f"{kid}.{payload}.{sig[:-2]}AA",
        "truncated": f"{kid}.{payload}",
        "junk": "not-a-token",
    }
    old_ring = {"old": base64.b64decode(OLD_KEY)}
    cases: list[tuple[str, int, str]] = [
        *[(t, 403, "link_tampered") for t in tampered.values()],
        (link_for(api_settings, gate, workflow_id, "alice", key_id="old", keyring=old_ring), 403, "link_unknown_key"),
        (link_for(api_settings, gate, workflow_id, "alice", expires_in=timedelta(seconds=-1)), 410, "link_expired"),
        (link_for(api_settings, gate, workflow_id, "alice", digest="0" * 64), 409, "link_stale"),
        (link_for(api_settings, gate, workflow_id, "alice", round=gate["round"] + 1), 409, "link_stale"),
        (link_for(api_settings, gate, workflow_id + "-other", "alice"), 404, ""),
    ]  # fmt: skip
    for token, status, code in cases:
        for answer in (await http.get(f"/ui/links/{token}"), await post_link(http, token)):
            assert answer.status_code == status, (token, answer.text[:300])
            if code:
                assert refusal(answer) == code
            assert "was recorded" not in answer.text
    gate = await gate_of(http, workflow_id, as_)
    assert gate["approvals"] == [] and gate["state"] == "open"


async def test_a_browser_signed_in_as_someone_else_cannot_use_the_link(
    http: httpx.AsyncClient,
    start_run: StartRun,
    api_settings: Settings,
    keys: dict[str, str],
    as_: Auth,
) -> None:
    """Carol, signed in, opens a link sent to alice: the page and its POST refuse her, naming
    both; nothing is decided."""
    workflow_id = await start_run(inp={"ref": "l3"})
    gate = await gate_of(http, workflow_id, as_)
    token = link_for(api_settings, gate, workflow_id, "alice")
    assert (await sign_in(http, keys["carol"])).status_code == 303
    for answer in (await http.get(f"/ui/links/{token}"), await post_link(http, token)):
        assert (answer.status_code, refusal(answer)) == (403, "link_other_principal")
        assert "<strong>carol</strong>" in answer.text and "<strong>alice</strong>" in answer.text
    assert (await gate_of(http, workflow_id, as_))["approvals"] == []


async def test_a_link_of_a_principal_without_an_active_key_is_refused(
    http: httpx.AsyncClient, start_run: StartRun, api_settings: Settings, as_: Auth
) -> None:
    """A link for someone the keys file does not (or no longer) lists decides nothing."""
    workflow_id = await start_run(inp={"ref": "l4"})
    gate = await gate_of(http, workflow_id, as_)
    token = link_for(api_settings, gate, workflow_id, "mallory")
    for answer in (await http.get(f"/ui/links/{token}"), await post_link(http, token)):
        assert (answer.status_code, refusal(answer)) == (403, "no_active_key")


async def test_a_post_from_elsewhere_or_without_an_origin_is_refused(
    http: httpx.AsyncClient, start_run: StartRun, api_settings: Settings, as_: Auth
) -> None:
    """A decision posted without an Origin (not a browser on the page) or from another site, or
    as JSON, or with an action the gate does not offer, changes nothing."""
    workflow_id = await start_run(inp={"ref": "l5"})
    gate = await gate_of(http, workflow_id, as_)
    token = link_for(api_settings, gate, workflow_id, "alice")
    path = f"/ui/links/{token}"
    bare = await http.post(path, data={"action": "approve"})
    assert bare.status_code == 403
    foreign = await http.post(
        path, data={"action": "approve"}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    as_json = await http.post(path, json={"action": "approve"}, headers=own_origin(http))
    assert as_json.status_code == 415
    modify = await post_link(http, token, "modify", patch='{"seconds": 0}')
    assert modify.status_code == 422
    assert (await gate_of(http, workflow_id, as_))["approvals"] == []


async def test_a_delegate_sees_the_absent_approvers_gate_and_decides_it_for_them(
    http: httpx.AsyncClient,
    start_run: StartRun,
    api_settings: Settings,
    keys: dict[str, str],
    as_: Auth,
) -> None:
    """Alice is away and delegates to dave: a gate naming user:alice is in dave's inbox and
    shows him the form on its panel, and dave's decision (API) counts for alice, the audit
    saying so with its channel."""
    definition = {
        "name": "foralice",
        "input": {"type": "object"},
        "steps": [
            {
                "id": "release",
                "tool": "test.echo",
                "with": {"ref": "x"},
                "approval": {"approvers": ["user:alice"]},
            }
        ],
    }
    workflow_id = await start_run(definition, {}, who="root")
    await gate_of(http, workflow_id, as_)
    inbox = (await http.get("/approvals", headers=as_("dave"))).json()
    assert [(i["workflow_id"], i["gate"]) for i in inbox["items"]] == [(workflow_id, "release")]
    carol = (await http.get("/approvals", headers=as_("carol"))).json()
    assert all(i["workflow_id"] != workflow_id for i in carol["items"])
    assert (await sign_in(http, keys["dave"])).status_code == 303
    panel = await http.get(f"/ui/runs/{workflow_id}/gates/release")
    assert "You decide for alice" in panel.text and 'value="approve"' in panel.text
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("dave")
    )
    assert r.status_code == 200, r.text
    assert r.json()["approvals"][0]["on_behalf_of"] == "alice"
    await wait_state(http, workflow_id, "completed", as_("root"))
    audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("root"))).json()
    vote = next(e for e in audit["entries"] if e.get("action") == "approve")
    assert (vote["actor"], vote["on_behalf_of"], vote["channel"]) == ("dave", "alice", "api")


async def test_keyless_routes_never_parse_a_json_body(http: httpx.AsyncClient) -> None:
    """A JSON body sent to a route that takes no key (the web app, Slack's interactions) is not
    parsed by anyone: the route refuses it by its type (415) or its signature (401), never with
    the JSON parser's 400 or 422."""
    broken = b"[" * 5_000
    headers = {"Content-Type": "application/json"}
    for path in ("/ui/signin", "/ui/links/anything"):
        r = await http.post(path, content=broken, headers={**headers, **own_origin(http)})
        assert r.status_code == 415, (path, r.text[:200])
    slack = await http.post("/integrations/slack/interactions", content=broken, headers=headers)
    assert slack.status_code == 401
