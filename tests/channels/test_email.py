"""notify.email against a real SMTP server (aiosmtpd) on loopback: STARTTLS or TLS, login, plain
text plus HTML, each approver's own signed link, team addresses with the page link only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import pytest
import structlog
from temporalio.exceptions import ApplicationError

from activities.links import verify
from activities.runtime import ToolActivities
from tests.channels.conftest import (
    LINK_KEY,
    PUBLIC,
    SMTP_PASSWORD,
    Mailbox,
    all_text,
    held_until_carol_wakes,
    notice,
)
from tests.tools.conftest import make_call

Smtp = Callable[..., tuple[Mailbox, dict[str, Any]]]


def parts(mail: Message) -> dict[str, str]:
    return {
        p.get_content_type(): p.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for p in mail.walk()
        if not p.is_multipart()
    }


async def test_each_recipient_mailed_with_their_own_signed_link_over_starttls(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], smtp: Smtp
) -> None:
    """After STARTTLS and login, alice and her delegate bob each get a text+HTML mail whose link
    verifies to them; carol is held for her quiet hours; the password is nowhere in the output."""
    box, overrides = smtp("starttls")
    acts = make_acts(**channel_settings | overrides)
    call = make_call("notify.email", {"text": "Build 42", "gate": notice().model_dump(mode="json")})
    result = await acts.execute(call)
    held_until_carol_wakes(result.output)
    assert result.output == {
        "posts": [],
        "held": ["carol"],
        "held_until": result.output["held_until"],  # type: ignore[index]
        "sent": 2,
    }
    assert [to for to, _ in box.mails] == [["alice@example.com"], ["bob@example.com"]]
    for (_, mail), principal in zip(box.mails, ["alice", "bob"], strict=True):
        body = parts(mail)
        assert set(body) == {"text/plain", "text/html"}
        line = next(x for x in body["text/plain"].splitlines() if x.startswith("Open: "))
        token = line.removeprefix(f"Open: {PUBLIC}/ui/links/")
        claims = verify(token, {"default": LINK_KEY}, datetime.now(UTC))
        assert (claims.principal, claims.gate, claims.round) == (principal, "approve", 2)
        assert token in body["text/html"]
        assert "waits for a decision" in " ".join(str(mail["Subject"]).split())
    assert SMTP_PASSWORD not in all_text(result.output)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # TLS from byte one
async def test_team_addresses_get_the_page_link_only_over_tls(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], smtp: Smtp
) -> None:
    """`to` is a shared mailbox: one mail with the gate's page link and no signed link, here
    over TLS from the first byte."""
    box, overrides = smtp("tls")
    acts = make_acts(**channel_settings | overrides)
    args = {
        "text": "Build 42",
        "to": ["team@example.com"],
        "gate": notice().model_dump(mode="json"),
    }
    result = await acts.execute(make_call("notify.email", args))
    assert result.output["sent"] == 1  # type: ignore[index]
    ((to, mail),) = box.mails
    assert to == ["team@example.com"]
    text = parts(mail)["text/plain"]
    assert f"{PUBLIC}/ui/runs/deploy-42/gates/approve" in text and "/ui/links/" not in str(mail)


async def test_html_part_escapes_the_message(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], smtp: Smtp
) -> None:
    """Markup in the text is shown as text in the HTML part, and a line break in the subject
    cannot add a header."""
    box, overrides = smtp("starttls")
    acts = make_acts(**channel_settings | overrides)
    args = {
        "text": '<img src="https://evil.example/x">',
        "subject": "hi\r\nBcc: eve@evil.example",
        "to": ["team@example.com"],
    }
    await acts.execute(make_call("notify.email", args))
    ((to, mail),) = box.mails
    assert to == ["team@example.com"] and mail["Bcc"] is None
    assert "<img" not in parts(mail)["text/html"] and "&lt;img" in parts(mail)["text/html"]


async def test_refused_login_fails_without_the_password(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], smtp: Smtp
) -> None:
    """A wrong password is a non-retryable failure whose message and logs hold no credential."""
    box, overrides = smtp("starttls")
    acts = make_acts(**channel_settings | overrides | {"stepgate_smtp_password": "wrong-pw-123"})
    with structlog.testing.capture_logs() as logs, pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("notify.email", {"text": "t", "to": ["a@example.com"]}))
    assert err.value.non_retryable and err.value.type == "SmtpAuthError"
    assert "wrong-pw-123" not in err.value.message and "wrong-pw-123" not in all_text(logs)
    assert box.mails == []


async def test_credentials_never_sent_without_tls(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], smtp: Smtp
) -> None:
    """STEPGATE_SMTP_SECURITY=none with a user name is refused before connecting."""
    box, overrides = smtp("starttls")
    acts = make_acts(**channel_settings | overrides | {"stepgate_smtp_security": "none"})
    with pytest.raises(ApplicationError, match="never sends SMTP credentials without TLS"):
        await acts.execute(make_call("notify.email", {"text": "t", "to": ["a@example.com"]}))
    assert box.logins == []


@pytest.mark.parametrize(
    "to",
    [
        ["a@example.com\r\nBcc: eve@evil.example"],
        ["Eve <eve@evil.example>"],
        [f"x{i}@e.co" for i in range(51)],
    ],
)
async def test_bad_or_too_many_addresses_refused(
    make_acts: Callable[..., ToolActivities], channel_settings: dict[str, Any], to: list[str]
) -> None:
    """`to` takes at most 50 plain addresses; a line break or a display name is refused."""
    acts = make_acts(
        **channel_settings | {"stepgate_smtp_host": "127.0.0.1", "stepgate_smtp_from": "s@e.co"}
    )
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("notify.email", {"text": "t", "to": to}))
    assert err.value.non_retryable
