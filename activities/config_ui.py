"""The approver web app's part of Settings (activities/config.py): how its sessions are sealed
and how long they last (api/ui/session.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class UiSettings(BaseSettings):
    """Settings inherits these; env names are the field names in upper case."""

    stepgate_ui_secret: str | None = Field(
        None,
        repr=False,
        min_length=32,
        description="at least 32 characters: seals the web app's session cookies, the same on "
        "every API replica; unset: a random one per process (sessions end when it restarts)",
    )
    stepgate_ui_session_minutes: int = Field(
        480,
        ge=5,
        le=10_080,
        description="how long a web app sign-in lasts; the API key is checked again on every "
        "request as well",
    )
