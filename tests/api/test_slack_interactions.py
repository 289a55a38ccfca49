"""Slack's interactions over real HTTP against a real worker, with a fake Slack Web API on
loopback that records every chat.postEphemeral: a signed approve from a mapped approver decides
the gate; a bad signature, an old timestamp, missing headers, a replay (exact or with a changed
body) and an oversized body get a 401 or 413 and change nothing; an unmapped user, one the gate
does not name and a press on a closed gate get an ephemeral refusal and change nothing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from activities.config import Settings
from api.slack_signature import MAX_BODY_BYTES
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.support.channels import (
    BOT_TOKEN,
    SIGNING_SECRET,
    button_press,
    channel_settings,
    slack_headers,
)
from tests.tools.server import LocalServer, Seen, json_reply

pytestmark = pytest.mark.asyncio
Auth = Callable[[str], dict[str, str]]
PATH = "/integrations/slack/interactions"


@pytest.fixture
def slack() -> Iterator[LocalServer]:
    """A fake Slack Web API: chat.postEphemeral answers ok and is recorded."""
    server = LocalServer()
    server.route("POST", "/api/chat.postEphemeral", lambda _: json_reply({"ok": True}))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api_settings(
    settings: Settings,
    tmp_path: Path,
    keys: dict[str, str],
    definitions: Path,
    slack: LocalServer,
) -> Settings:
    """Alice (an approver of the team) and vic (a viewer, no approver) have Slack ids."""
    base = settings.model_copy(
        update={
            "stepgate_api_keys_file": tmp_path / "keys.yaml",
            "stepgate_definitions_dir": definitions,
        }
    )
    book = {"alice": {"slack": "U0ALICE"}, "vic": {"slack": "U0VIC"}}
    return channel_settings(base, tmp_path, book, slack.url("/api"))


def ephemerals(slack: LocalServer) -> list[Seen]:
    return [s for s in slack.seen if s.path == "/api/chat.postEphemeral"]


async def gate_of(http: httpx.AsyncClient, workflow_id: str, auth: Auth) -> dict[str, Any]:
    async def probe() -> list[dict[str, Any]]:
        status = (await http.get(f"/workflows/{workflow_id}", headers=auth("root"))).json()
        return list(status.get("open_gates", []))

    gates = await eventually(probe, bool, f"{workflow_id} at its gate")
    return dict(gates[0])


def value(workflow_id: str, gate: dict[str, Any]) -> dict[str, str]:
    return {"workflow_id": workflow_id, "gate": gate["gate"], "digest": gate["digest"]}


async def press(http: httpx.AsyncClient, body: bytes, **signed: Any) -> httpx.Response:
    return await http.post(PATH, content=body, headers=slack_headers(body, **signed))


async def told(slack: LocalServer, count: int) -> list[dict[str, Any]]:
    """The ephemeral messages, once `count` have been posted."""
    seen = await eventually(lambda: ephemerals(slack), lambda s: len(s) >= count, "ephemerals")
    return [s.json() for s in seen]


async def test_a_signed_approve_decides_and_the_user_is_told(
    http: httpx.AsyncClient, start_run: StartRun, slack: LocalServer, as_: Auth
) -> None:
    """Alice's signed approve is answered with an empty 200, decides the gate as alice, and the run
    completes; she alone is told, through chat.postEphemeral with the bot token."""
    workflow_id = await start_run(inp={"ref": "s1"})
    gate = await gate_of(http, workflow_id, as_)
    r = await press(http, button_press("U0ALICE", "approve", value(workflow_id, gate)))
    assert r.status_code == 200 and r.content == b""
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    release = next(s for s in status["steps"] if s["id"] == "release")
    assert release["gate"]["decided_by"] == "alice"
    (message,) = await told(slack, 1)
    assert message["channel"] == "D0CHANNEL" and message["user"] == "U0ALICE"
    assert "Recorded" in message["text"]
    (seen,) = ephemerals(slack)
    assert seen.headers["authorization"] == f"Bearer {BOT_TOKEN}"


async def test_forged_stale_and_replayed_requests_get_401_and_change_nothing(
    http: httpx.AsyncClient, start_run: StartRun, slack: LocalServer, as_: Auth
) -> None:
    """A wrong secret, a timestamp ten minutes old or ahead, missing headers, a genuine request
    sent again as is or with its body changed, and an unsigned one: each is a 401, nobody is
    told anything and the gate stays open. The signing secret and bot token never reach the
    log."""
    workflow_id = await start_run(inp={"ref": "s2"})
    gate = await gate_of(http, workflow_id, as_)
    body = button_press("U0ALICE", "approve", value(workflow_id, gate))
    rejected = button_press("U0ALICE", "reject", value(workflow_id, gate))
    with structlog.testing.capture_logs() as logs:
        assert (await press(http, body, secret="another-secret")).status_code == 401
        assert (await press(http, body, at=time.time() - 600)).status_code == 401
        assert (await press(http, body, at=time.time() + 600)).status_code == 401
        bare = await http.post(
            PATH, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert bare.status_code == 401
        genuine = slack_headers(rejected)
        changed = await http.post(PATH, content=body, headers=genuine)
        assert changed.status_code == 401
        assert changed.json()["error"]["code"] == "bad_signature"
        first = await http.post(PATH, content=rejected, headers=genuine)
        assert first.status_code == 200
        again = await http.post(PATH, content=rejected, headers=genuine)
        assert again.status_code == 401
        assert "received before" in again.json()["error"]["message"]
    await wait_state(http, workflow_id, "failed", as_("root"))  # only the genuine reject counted
    (message,) = await told(slack, 1)
    assert "Recorded" in message["text"] and "reject" in message["text"]
    text = repr(logs)
    assert SIGNING_SECRET not in text and BOT_TOKEN not in text


async def test_an_oversized_body_is_refused_before_its_signature(
    http: httpx.AsyncClient, slack: LocalServer
) -> None:
    """A body over 64 KiB is a 413 whatever it carries; nobody is told anything."""
    body = b"payload=" + b"x" * MAX_BODY_BYTES
    r = await press(http, body)
    assert r.status_code == 413
    assert ephemerals(slack) == []


async def test_unmapped_ineligible_and_late_presses_are_refused_ephemerally(
    http: httpx.AsyncClient, start_run: StartRun, slack: LocalServer, as_: Auth
) -> None:
    """A Slack user the address book does not list, vic (listed, not an approver), a button
    value that names no gate, and a press after the gate closed: each gets a 200, an ephemeral
    message saying why, and nothing changes."""
    workflow_id = await start_run(inp={"ref": "s3"})
    gate = await gate_of(http, workflow_id, as_)
    pressed = value(workflow_id, gate)
    assert (await press(http, button_press("U0NOBODY", "approve", pressed))).status_code == 200
    (unmapped,) = await told(slack, 1)
    assert "address book" in unmapped["text"] and unmapped["user"] == "U0NOBODY"
    assert (await press(http, button_press("U0VIC", "approve", pressed))).status_code == 200
    _, ineligible = await told(slack, 2)
    assert "Nothing was decided" in ineligible["text"] and "vic" in ineligible["text"]
    junk = button_press("U0ALICE", "approve", '{"workflow_id": 1}')
    assert (await press(http, junk)).status_code == 200
    *_, bad_value = await told(slack, 3)
    assert "does not name a gate" in bad_value["text"]
    still = await gate_of(http, workflow_id, as_)
    assert still["approvals"] == [] and still["rejections"] == []

    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("bob")
    )
    assert r.status_code == 200
    assert (await press(http, button_press("U0ALICE", "reject", pressed))).status_code == 200
    *_, late = await told(slack, 4)
    assert "Nothing was decided" in late["text"]
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    release = next(s for s in status["steps"] if s["id"] == "release")
    assert release["gate"]["decided_by"] == "bob"


async def test_a_signed_request_that_is_no_button_press_is_a_precise_4xx(
    http: httpx.AsyncClient, slack: LocalServer
) -> None:
    """Signed but not Stepgate's: another interaction type is acknowledged and ignored, a body
    without a JSON payload is a 400, JSON sent as JSON a 415; nobody is told anything."""
    other = b"payload=%7B%22type%22%3A%22view_submission%22%7D"
    assert (await press(http, other)).status_code == 200
    for body in (b"payload=%7Bnot-json", b"nothing=here", b"payload=1&payload=2"):
        r = await press(http, body)
        assert r.status_code == 400, body
    shapeless = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    r = await press(http, shapeless)
    assert r.status_code == 400 and "not a button press" in r.json()["error"]["message"]
    raw = b'{"type": "block_actions"}'
    headers = {**slack_headers(raw), "Content-Type": "application/json"}
    assert (await http.post(PATH, content=raw, headers=headers)).status_code == 415
    assert ephemerals(slack) == []
