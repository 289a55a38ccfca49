"""The notification channels' part of Settings (activities/config.py): the keys that sign
approvers' links, the address book, the Slack app and the SMTP server the notify tools use
(activities/links.py, activities/address_book.py, activities/tools/notify_*.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from activities.addresses import url_host_port
from activities.keyring import parse_keyring

LINK_ENV = "STEPGATE_LINK"
# A link outliving a month is a standing credential, not a notification.
MAX_LINK_HOURS = 24 * 30


class ChannelSettings(BaseSettings):
    """Settings inherits these; env names are the field names in upper case. Secrets stay out of
    repr, so a logged or printed Settings does not carry them."""

    stepgate_link_keys: str | None = Field(
        None,
        repr=False,
        description="keyring of the keys that sign approvers' links: comma list of `id:BASE64` "
        "(32 bytes each); links signed under any of them verify until it is removed",
    )
    stepgate_link_key: str | None = Field(
        None,
        repr=False,
        description="base64 of 32 random bytes: signs approvers' links, under the id "
        "STEPGATE_LINK_KEY_ID; no link key: personal notifications carry the plain gate link",
    )
    stepgate_link_key_id: str = Field(
        "default", description="id of the key new links are signed with (carried in each link)"
    )
    stepgate_link_hours: int = Field(
        72,
        ge=1,
        le=MAX_LINK_HOURS,
        description="how long an approver's link works (never past the gate's deadline)",
    )
    stepgate_address_book: Path | None = Field(
        None,
        description="YAML keyed by principal: email, Slack user id, personal webhook, roles, "
        "quiet hours, out-of-office delegate; reread when it changes; unset: empty",
    )
    stepgate_slack_api_url: str = Field(
        "https://slack.com/api", description="the Slack Web API notify.slack posts through"
    )
    stepgate_slack_bot_token: str | None = Field(
        None, repr=False, description="the Slack app's bot token (xoxb-...), for notify.slack"
    )
    stepgate_slack_signing_secret: str | None = Field(
        None,
        repr=False,
        description="the Slack app's signing secret: /integrations/slack/interactions refuses "
        "every request without it",
    )
    stepgate_smtp_host: str = Field("", description="SMTP server notify.email sends through")
    stepgate_smtp_port: int = Field(587, ge=1, le=65_535, description="the SMTP server's port")
    stepgate_smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls: upgrade the connection (port 587); tls: TLS from the start "
        "(port 465); none: plain (no credentials are sent then)",
    )
    stepgate_smtp_username: str = Field("", description="SMTP user name; empty: no login")
    stepgate_smtp_password: str | None = Field(None, repr=False, description="SMTP password")
    stepgate_smtp_from: str = Field("", description="the From address of notify.email's mail")

    @field_validator("stepgate_smtp_from", "stepgate_smtp_host", "stepgate_smtp_username")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # Header and command values: a line break would start another header or command.
        if any(c in value for c in "\r\n\0"):
            raise ValueError("must be one line")
        return value.strip()

    @field_validator("stepgate_slack_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if url_host_port(value) is None:
            raise ValueError("must be an http(s) URL")
        return value.strip().rstrip("/")

    def link_keyring(self) -> dict[str, bytes]:
        """Key id -> 32-byte key from STEPGATE_LINK_KEYS plus STEPGATE_LINK_KEY (under
        STEPGATE_LINK_KEY_ID); empty when links are not signed. Messages never echo a key."""
        return parse_keyring(
            self.stepgate_link_keys, self.stepgate_link_key, self.stepgate_link_key_id, LINK_ENV
        )
