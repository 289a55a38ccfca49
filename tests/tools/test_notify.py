"""notify.webhook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply


async def test_webhook_posts_slack_message_when_url_given(
    acts: ToolActivities, server: LocalServer
) -> None:
    """Text and blocks are posted as Slack JSON with the call's idempotency key."""
    server.route("POST", "/hook", lambda seen: Reply(200, b"ok"))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Deployed*"}}]
    args = {"url": server.url("/hook"), "text": "Deployed", "blocks": blocks}
    call = make_call("notify.webhook", args)
    result = await acts.execute(call)
    assert result.output == {"status": 200, "sent": 1, "posts": [], "held": [], "held_until": None}
    seen = server.seen[0]
    assert seen.json() == {"text": "Deployed", "blocks": blocks}
    assert seen.headers["idempotency-key"] == call.idempotency_key


async def test_webhook_uses_configured_url_when_url_omitted(
    make_acts: Callable[..., ToolActivities], server: LocalServer
) -> None:
    """STEPGATE_NOTIFY_URL is the default destination."""
    server.route("POST", "/default", lambda seen: Reply(204))
    acts = make_acts(stepgate_notify_url=server.url("/default"))
    result = await acts.execute(make_call("notify.webhook", {"text": "hello"}))
    assert result.output["status"] == 204  # type: ignore[index]
    assert server.seen[0].json() == {"text": "hello"}


async def test_webhook_fails_fatally_when_no_url_known(acts: ToolActivities) -> None:
    """No url and no STEPGATE_NOTIFY_URL is a non-retryable error saying what to set."""
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("notify.webhook", {"text": "hello"}))
    assert err.value.non_retryable is True and "STEPGATE_NOTIFY_URL" in err.value.message


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (403, False)])
async def test_webhook_classifies_failure_when_status_is_error(
    acts: ToolActivities, server: LocalServer, status: int, retryable: bool
) -> None:
    """5xx and 429 are retried, other 4xx are not; the webhook URL stays out of the message."""
    server.route("POST", "/hook", lambda seen: Reply(status, b"nope"))
    url = server.url("/hook")
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("notify.webhook", {"url": url, "text": "x"}))
    assert err.value.non_retryable is not retryable
    assert url not in err.value.message
