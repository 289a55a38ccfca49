"""What the channel tests share: settings with a link key, an address book and a Slack app; a
link minted for a gate as the notify tools mint one; an interaction signed as Slack signs it."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from activities.config import Settings
from activities.links import LinkClaims, mint, new_nonce
from api.slack_signature import sign

LINK_KEY_ID = "t1"
LINK_KEY = base64.b64encode(b"k" * 32).decode()
OLD_KEY = base64.b64encode(b"o" * 32).decode()
SIGNING_SECRET = "slack-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-bot-token-0123456789"


def channel_settings(
    base: Settings, folder: Path, book: dict[str, Any], slack_api_url: str = "http://127.0.0.1:9"
) -> Settings:
    """`base` with a link key, the address book `book` (written to `folder`) and a Slack app."""
    path = folder / "address-book.yaml"
    path.write_text(yaml.safe_dump(book))
    return base.model_copy(
        update={
            "stepgate_link_keys": f"{LINK_KEY_ID}:{LINK_KEY}",
            "stepgate_link_key_id": LINK_KEY_ID,
            "stepgate_address_book": path,
            "stepgate_slack_api_url": slack_api_url,
            "stepgate_slack_bot_token": BOT_TOKEN,
            "stepgate_slack_signing_secret": SIGNING_SECRET,
        }
    )


def link_for(
    settings: Settings,
    gate: dict[str, Any],
    workflow_id: str,
    principal: str,
    *,
    expires_in: timedelta = timedelta(hours=1),
    key_id: str = LINK_KEY_ID,
    keyring: dict[str, bytes] | None = None,
    **changed: Any,
) -> str:
    """The token of a link to `gate` (as the status shows it) for `principal`; `changed`
    overrides claims (another digest, round or gate)."""
    claims = LinkClaims(
        **{
            "workflow_id": workflow_id,
            "gate": gate["gate"],
            "round": gate["round"],
            "digest": gate["digest"],
            "principal": principal,
            "expires": datetime.now(UTC) + expires_in,
            "nonce": new_nonce(),
            **changed,
        }
    )
    return mint(claims, keyring or settings.link_keyring(), key_id)


def button_press(
    user: str,
    action: str,
    value: dict[str, Any] | str,
    channel: str = "D0CHANNEL",
) -> bytes:
    """Slack's urlencoded body for a press of a button whose value is `value`."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "channel": {"id": channel, "name": "directmessage"},
        "container": {"type": "message", "channel_id": channel, "message_ts": "1.2"},
        "actions": [
            {
                "type": "button",
                "action_id": action,
                "block_id": "gate",
                "value": value if isinstance(value, str) else json.dumps(value),
                "action_ts": "1.3",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def slack_headers(
    body: bytes, *, secret: str = SIGNING_SECRET, at: float | None = None
) -> dict[str, str]:
    """The headers Slack sends with `body`, signed at `at` (now by default)."""
    stamp = str(int(time.time() if at is None else at))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(secret, stamp, body),
    }
