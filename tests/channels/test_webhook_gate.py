"""notify.webhook with a gate notice: the shared webhook gets the gate's page link; `personal`
posts to each approver's own webhook with their own signed link."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.config import Settings
from activities.egress import tool_grants
from activities.links import verify
from activities.runtime import ToolActivities
from tests.channels.conftest import LINK_KEY, PUBLIC, held_until_carol_wakes, notice
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply


async def test_shared_webhook_gets_the_page_link_only(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], server: LocalServer
) -> None:
    """A team webhook's message ends with the gate's page link, never a signed link."""
    server.route("POST", "/team", lambda seen: Reply(200, b"ok"))
    acts = make_acts(**channel_settings)
    args = {
        "url": server.url("/team"),
        "text": "Build 42",
        "gate": notice().model_dump(mode="json"),
    }
    result = await acts.execute(make_call("notify.webhook", args))
    assert result.output["sent"] == 1  # type: ignore[index]
    (seen,) = server.seen
    assert seen.json()["text"] == f"Build 42\n{PUBLIC}/ui/runs/deploy-42/gates/approve"


async def test_personal_webhooks_get_their_own_links_and_quiet_hours_hold(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], server: LocalServer
) -> None:
    """`personal: true` posts to alice's and her delegate bob's webhooks, each link verifying to
    its owner; carol is held; a broken webhook of one does not stop the other."""
    server.route("POST", "/hook/alice", lambda seen: Reply(500, b"down"))
    server.route("POST", "/hook/bob", lambda seen: Reply(200, b"ok"))
    acts = make_acts(**channel_settings)
    args = {"text": "Build 42", "personal": True, "gate": notice().model_dump(mode="json")}
    result = await acts.execute(make_call("notify.webhook", args))
    held_until_carol_wakes(result.output)
    until = result.output["held_until"]  # type: ignore[index]
    assert result.output == {
        "posts": [],
        "held": ["carol"],
        "held_until": until,
        "sent": 1,
        "status": 200,
    }
    by_path = {s.path: s.json()["text"] for s in server.seen}
    assert set(by_path) == {"/hook/alice", "/hook/bob"}
    for path, principal in (("/hook/alice", "alice"), ("/hook/bob", "bob")):
        token = by_path[path].rsplit("\n", 1)[1].removeprefix(f"{PUBLIC}/ui/links/")
        assert verify(token, {"default": LINK_KEY}, datetime.now(UTC)).principal == principal


async def test_without_link_keys_personal_webhooks_get_the_page_link(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], server: LocalServer
) -> None:
    """With no link key configured a personal message carries the plain page link."""
    server.route("POST", "/hook/alice", lambda seen: Reply(200))
    server.route("POST", "/hook/bob", lambda seen: Reply(200))
    acts = make_acts(**channel_settings | {"stepgate_link_key": None})
    args = {"text": "t", "personal": True, "gate": notice().model_dump(mode="json")}
    await acts.execute(make_call("notify.webhook", args))
    assert all(s.json()["text"].endswith("/ui/runs/deploy-42/gates/approve") for s in server.seen)


async def test_personal_without_a_gate_refused(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any]
) -> None:
    """`personal: true` outside a gate notification has nobody to address: a fatal error."""
    acts = make_acts(**channel_settings)
    with pytest.raises(ApplicationError, match="needs a gate notice") as err:
        await acts.execute(make_call("notify.webhook", {"text": "t", "personal": True}))
    assert err.value.non_retryable


def test_slack_api_and_smtp_host_open_to_their_own_tool_only() -> None:
    """The operator's Slack API URL is granted to notify.slack and the SMTP host:port to
    notify.email, and to no other tool."""
    settings = Settings(
        stepgate_slack_api_url="https://slack.internal:8443/api",
        stepgate_smtp_host="mail.internal",
        stepgate_smtp_port=2525,
        _env_file=None,  # type: ignore[call-arg]
    )
    grants = tool_grants(settings)
    assert [e.text for e in grants["notify.slack"]] == ["slack.internal:8443"]
    assert [e.text for e in grants["notify.email"]] == ["mail.internal:2525"]
    assert set(grants) == {"notify.slack", "notify.email"}
