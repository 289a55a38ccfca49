"""The live-stream part of Settings (activities/config.py), in a module of its own so that one
stays readable: the bytes one principal's `/events` streams may send (api/limits.py ByteBudget)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class StreamSettings(BaseSettings):
    """Settings inherits these; env names are the field names in upper case."""

    stepgate_stream_bytes_per_s: int = Field(
        1024 * 1024,
        ge=1024,
        description="bytes a second one principal's live /events streams may send together, "
        "per API process",
    )
    stepgate_stream_burst_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="bytes one principal's live streams may send at once before the rate applies",
    )
