"""The whole chain of each channel, every part real: a run's gate is announced by the worker's own
notify tools (a fake Slack Web API and an SMTP server on loopback stand in for Slack and mail),
the approver decides from what they received (a signed Slack button press, the mailed one-time
link), and the run goes on; the Slack messages then show who decided and lose their buttons."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.config import Settings
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.channels.conftest import BOT_TOKEN, FakeSlack, Mailbox, smtp  # noqa: F401 (fixture)
from tests.support.channels import LINK_KEY, button_press, channel_settings, slack_headers
from tests.tools.server import LocalServer, json_reply

pytestmark = pytest.mark.asyncio
Auth = Callable[[str], dict[str, str]]
PUBLIC = "https://stepgate.example"
LINK = re.compile(re.escape(PUBLIC) + r"(/ui/links/[A-Za-z0-9._~-]+)")


def pipeline(notify: dict[str, Any]) -> dict[str, Any]:
    """One gated step that alice or bob may approve, announced through `notify`."""
    return {
        "name": "chain",
        "version": "1",
        "steps": [
            {
                "id": "release",
                "tool": "test.echo",
                "with": {"ref": "v1"},
                "approval": {
                    "approvers": ["user:alice", "user:bob"],
                    "review": "ship v1?",
                    "notify": notify,
                },
            }
        ],
    }


@pytest.fixture
def slack_api() -> Iterator[FakeSlack]:
    server = LocalServer()
    fake = FakeSlack(server)
    server.route("POST", "/api/chat.postEphemeral", lambda _: json_reply({"ok": True}))
    server.start()
    try:
        yield fake
    finally:
        server.stop()


@pytest.fixture
def mail(smtp: Callable[..., tuple[Mailbox, dict[str, Any]]]) -> tuple[Mailbox, dict[str, Any]]:  # noqa: F811
    return smtp("starttls")


@pytest.fixture
def api_settings(
    settings: Settings,
    tmp_path: Path,
    keys: dict[str, str],
    definitions: Path,
    slack_api: FakeSlack,
    mail: tuple[Mailbox, dict[str, Any]],
) -> Settings:
    """Alice and bob have Slack ids and mailboxes; the worker and the API share the settings."""
    base = settings.model_copy(
        update={
            "stepgate_api_keys_file": tmp_path / "keys.yaml",
            "stepgate_definitions_dir": definitions,
            "stepgate_public_url": PUBLIC,
            **mail[1],
        }
    )
    book = {
        "alice": {"slack": "U0ALICE", "email": "alice@example.com"},
        "bob": {"slack": "U0BOB", "email": "bob@example.com"},
    }
    shared = channel_settings(base, tmp_path, book, slack_api.server.url("/api"))
    return shared.model_copy(update={"stepgate_slack_bot_token": BOT_TOKEN})


async def test_slack_dm_button_decides_and_every_message_is_updated(
    http: httpx.AsyncClient, start_run: StartRun, slack_api: FakeSlack, as_: Auth, client: Client
) -> None:
    """notify.slack DMs alice and bob, each with approve and reject buttons and their own link;
    alice's signed press approves as alice through every gate rule, the run completes, the audit
    says it came from Slack, and both messages are updated to say so, without buttons. Neither a
    link's token nor the link key is anywhere in the run's history."""
    workflow_id = await start_run(pipeline({"tool": "notify.slack"}), {}, who="root")
    posted = await eventually(
        lambda: slack_api.calls("chat.postMessage"), lambda c: len(c) == 2, "two DMs"
    )
    by_user = {p["channel"]: p for p in posted}
    assert set(by_user) == {"U0ALICE", "U0BOB"}
    blob = json.dumps(by_user["U0ALICE"])
    assert "/ui/links/" in blob and "ship v1?" in blob
    buttons = [
        element
        for block in by_user["U0ALICE"]["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element.get("action_id") in ("approve", "reject")
    ]
    assert {b["action_id"] for b in buttons} == {"approve", "reject"}
    value = next(b["value"] for b in buttons if b["action_id"] == "approve")
    assert json.loads(value)["workflow_id"] == workflow_id

    body = button_press("U0ALICE", "approve", value)
    r = await http.post(
        "/integrations/slack/interactions", content=body, headers=slack_headers(body)
    )
    assert r.status_code == 200
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    gate = next(s for s in status["steps"] if s["id"] == "release")["gate"]
    assert gate["decided_by"] == "alice"
    audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("root"))).json()
    decision = next(e for e in audit["entries"] if e["kind"] == "decision")
    assert decision["actor"] == "alice" and decision["channel"] == "slack"

    updates = await eventually(
        lambda: slack_api.calls("chat.update"), lambda c: len(c) == 2, "both DMs updated"
    )
    assert {u["channel"] for u in updates} == {"D0ALICE", "D0BOB"}
    for update in updates:
        assert all(b["type"] != "actions" for b in update.get("blocks", []))
        assert "alice" in json.dumps(update) and "approve" in json.dumps(update)

    raw = (await client.get_workflow_handle(workflow_id).fetch_history()).to_json()
    history = raw + "".join(
        base64.b64decode(data).decode("utf-8", "replace")
        for data in re.findall(r'"data": "([A-Za-z0-9+/=]+)"', raw)
    )
    assert "ship v1?" in history  # the payloads are readable here: the absences below mean it
    token = re.search(r"/ui/links/([A-Za-z0-9._~-]+)", blob)
    assert token is not None and token.group(1) not in history
    assert "/ui/links/" not in history and LINK_KEY not in history


async def test_mailed_link_opens_without_deciding_then_decides_once(
    http: httpx.AsyncClient,
    start_run: StartRun,
    mail: tuple[Mailbox, dict[str, Any]],
    as_: Auth,
) -> None:
    """notify.email mails alice and bob their own one-time links; opening bob's (as a mail
    scanner would, twice) decides nothing, his POST from the page approves as bob through the
    link channel, and the link is refused after that."""
    box, _ = mail
    workflow_id = await start_run(pipeline({"tool": "notify.email"}), {}, who="root")
    mails = await eventually(lambda: list(box.mails), lambda m: len(m) == 2, "two mails")
    to_bob = next(m for rcpt, m in mails if rcpt == ["bob@example.com"])
    text = "".join(
        p.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for p in to_bob.walk()
        if p.get_content_type() == "text/plain"
    )
    found = LINK.search(text)
    assert found is not None, text
    path = found.group(1)

    for _ in range(2):
        page = await http.get(path)
        assert page.status_code == 200 and "ship v1?" in page.text
    status = (await http.get(f"/workflows/{workflow_id}", headers=as_("root"))).json()
    assert [g["gate"] for g in status["open_gates"]] == ["release"]

    origin = str(http.base_url).rstrip("/")
    done = await http.post(path, data={"action": "approve"}, headers={"Origin": origin})
    assert done.status_code == 200, done.text
    status = await wait_state(http, workflow_id, "completed", as_("root"))
    gate = next(s for s in status["steps"] if s["id"] == "release")["gate"]
    assert gate["decided_by"] == "bob"
    audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("root"))).json()
    decision = next(e for e in audit["entries"] if e["kind"] == "decision")
    assert decision["channel"] == "link"
    again = await http.get(path)
    assert again.status_code in (403, 409, 410) and "closed" in again.text.lower()
