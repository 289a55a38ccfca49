"""notify.slack against a fake Slack Web API on loopback: DMs with each approver's own signed
link, shared channels with the page link only, quiet hours, buttons, and the "decided" update."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from temporalio.exceptions import ApplicationError

from activities.links import verify
from activities.runtime import ToolActivities
from tests.channels.conftest import (
    BOT_TOKEN,
    LINK_KEY,
    PUBLIC,
    FakeSlack,
    all_text,
    held_until_carol_wakes,
    notice,
)
from tests.tools.conftest import make_call

PAGE = f"{PUBLIC}/ui/runs/deploy-42/gates/approve"


def links_in(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["url"] for b in blocks if b["type"] == "actions" for e in b["elements"] if "url" in e]


def buttons(blocks: list[dict[str, Any]]) -> dict[str, str]:
    return {
        e["action_id"]: e.get("value", "")
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
    }


async def run(acts: ToolActivities, args: dict[str, Any]) -> dict[str, Any]:
    result = await acts.execute(make_call("notify.slack", args))
    assert isinstance(result.output, dict)
    return result.output


async def test_dm_each_recipient_with_their_own_signed_link(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """Without a channel, alice and her delegate bob get a DM whose link verifies to their own
    principal, round and digest; carol, in her quiet hours, is held; posts are returned."""
    acts = make_acts(**channel_settings)
    out = await run(acts, {"text": "Build 42 waits", "gate": notice().model_dump(mode="json")})
    calls = slack.calls("chat.postMessage")
    assert [c["channel"] for c in calls] == ["U0ALICE", "U0BOB"]
    assert out["held"] == ["carol"] and out["sent"] == 2
    held_until_carol_wakes(out)
    assert out["posts"] == [{"channel": "D0ALICE", "ts": "1.0"}, {"channel": "D0BOB", "ts": "2.0"}]
    for call, principal in zip(calls, ["alice", "bob"], strict=True):
        (link,) = links_in(call["blocks"])
        token = link.removeprefix(f"{PUBLIC}/ui/links/")
        claims = verify(token, {"default": LINK_KEY}, datetime.now(UTC))
        assert (claims.principal, claims.workflow_id, claims.gate) == (
            principal,
            "deploy-42",
            "approve",
        )
        assert (claims.round, claims.digest) == (2, "sha256:feed")
        value = json.loads(buttons(call["blocks"])["approve"])
        assert value == {"workflow_id": "deploy-42", "gate": "approve", "digest": "sha256:feed"}
        assert set(buttons(call["blocks"])) == {"approve", "reject", "open_page"}
    assert all(s.headers["authorization"] == f"Bearer {BOT_TOKEN}" for s in slack.server.seen)
    assert BOT_TOKEN not in all_text(out, [s.body.decode() for s in slack.server.seen])


async def test_urgent_gate_overrides_quiet_hours(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """An urgent gate is sent to carol although she is in her quiet hours."""
    acts = make_acts(**channel_settings)
    gate = notice(priority="urgent").model_dump(mode="json")
    out = await run(acts, {"text": "now", "gate": gate})
    assert [c["channel"] for c in slack.calls("chat.postMessage")] == [
        "U0ALICE",
        "U0CAROL",
        "U0BOB",
    ]
    assert out["held"] == [] and out["held_until"] is None


async def test_a_notice_naming_only_some_reaches_them_alone(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """What quiet hours held, delivered later: a notice with `only: [bob]` DMs bob alone, with
    his own link; alice is not told again and carol, not named, is not even held."""
    acts = make_acts(**channel_settings)
    gate = notice(only=["bob"]).model_dump(mode="json")
    out = await run(acts, {"text": "Build 42 waits", "gate": gate})
    (call,) = slack.calls("chat.postMessage")
    assert call["channel"] == "U0BOB"
    (link,) = links_in(call["blocks"])
    claims = verify(
        link.removeprefix(f"{PUBLIC}/ui/links/"), {"default": LINK_KEY}, datetime.now(UTC)
    )
    assert claims.principal == "bob"
    assert out["held"] == [] and out["held_until"] is None and out["sent"] == 1


async def test_shared_channel_gets_the_page_link_never_a_token(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """A channel post carries the plain gate page link and the buttons (each press is checked
    against the presser), and no signed link anywhere in what was sent."""
    acts = make_acts(**channel_settings)
    out = await run(
        acts, {"text": "t", "channel": "C0TEAM", "gate": notice().model_dump(mode="json")}
    )
    (call,) = slack.calls("chat.postMessage")
    assert call["channel"] == "C0TEAM" and links_in(call["blocks"]) == [PAGE]
    assert "/ui/links/" not in json.dumps(call)
    assert out["posts"] == [{"channel": "C0TEAM", "ts": "1.0"}] and out["held"] == []


async def test_decided_updates_each_post_without_buttons(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """Event "decided" calls chat.update for every post with who decided what, and no actions."""
    acts = make_acts(**channel_settings)
    posts = [{"channel": "D0ALICE", "ts": "1.0"}, {"channel": "C0TEAM", "ts": "7.0"}]
    gate = notice(
        event="decided",
        outcome="approved",
        decided_by=["bob for alice"],
        decided_at=datetime(2030, 1, 1, tzinfo=UTC),
        posts=posts,
    )
    out = await run(acts, {"text": "t", "gate": gate.model_dump(mode="json")})
    updates = slack.calls("chat.update")
    assert [(u["channel"], u["ts"]) for u in updates] == [("D0ALICE", "1.0"), ("C0TEAM", "7.0")]
    assert slack.calls("chat.postMessage") == [] and out["sent"] == 2
    for update in updates:
        assert all(b["type"] != "actions" for b in update["blocks"])
        assert "approved by bob for alice" in update["text"]


async def test_review_text_cannot_ping_or_forge_links(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """Data in the message is escaped: `<!channel>` and `<https://evil|here>` show as text, and
    an oversized review is cut to Slack's 3,000-character section limit."""
    acts = make_acts(**channel_settings)
    review = "<!channel> click <https://evil.example|here> & " + "x" * 5_000
    gate = notice(review=review[:4_000]).model_dump(mode="json")
    await run(acts, {"text": "<!here>", "channel": "C0TEAM", "gate": gate})
    (call,) = slack.calls("chat.postMessage")
    sent = json.dumps(call)
    assert "<!channel>" not in sent and "<!here>" not in sent and "<https://evil" not in sent
    assert "&lt;!channel&gt;" in sent
    for block in call["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3_000


async def test_ids_too_long_for_a_button_value_leave_only_the_link(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """A button value past Slack's 2,000 characters would fail the whole post: the buttons are
    left out and the page link remains."""
    acts = make_acts(**channel_settings)
    gate = notice(workflow_id="w" * 1_000, gate="g" * 1_000).model_dump(mode="json")
    await run(acts, {"text": "t", "channel": "C0TEAM", "gate": gate})
    (call,) = slack.calls("chat.postMessage")
    assert set(buttons(call["blocks"])) == {"open_page"}


@pytest.mark.parametrize(
    ("error", "retryable"), [("invalid_auth", False), ("ratelimited", True), ("echo", False)]
)
async def test_slack_error_classified_and_token_never_shown(
    make_acts: Callable[..., ToolActivities],
    channel_settings: dict[str, Any],
    slack: FakeSlack,
    error: str,
    retryable: bool,
) -> None:
    """`ok: false` fails the call, retryable only for Slack's transient errors; the bot token is
    in no failure message or log."""
    slack.error = error
    acts = make_acts(**channel_settings)
    with structlog.testing.capture_logs() as logs, pytest.raises(ApplicationError) as err:
        await run(acts, {"text": "t", "gate": notice().model_dump(mode="json")})
    assert err.value.non_retryable is not retryable
    assert (error if error != "echo" else "HTTP 400") in err.value.message
    assert BOT_TOKEN not in err.value.message and BOT_TOKEN not in all_text(logs)


async def test_no_public_url_sends_without_link_and_says_so_once(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], slack: FakeSlack
) -> None:
    """With STEPGATE_PUBLIC_URL unset messages carry no link at all (not even a signed one)."""
    from activities.tools import _notice

    _notice._said.discard("public_url")
    acts = make_acts(**channel_settings | {"stepgate_public_url": ""})
    with structlog.testing.capture_logs() as logs:
        await run(acts, {"text": "t", "gate": notice().model_dump(mode="json")})
        await run(acts, {"text": "t", "gate": notice().model_dump(mode="json")})
    assert all(links_in(c["blocks"]) == [] for c in slack.calls("chat.postMessage"))
    said = [e for e in logs if "STEPGATE_PUBLIC_URL" in e["event"]]
    assert len(said) == 1
