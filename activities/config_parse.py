"""The request-parsing part of Settings (activities/config.py), in a module of its own so that one
stays readable: where the API checks and validates what requests send, and how much of it one
key's principal may have in flight (api/admission.py, api/checker.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ParseSettings(BaseSettings):
    """Settings inherits these; env names are the field names in upper case."""

    stepgate_parse_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="processes the API checks request documents in: JSON bodies over 64 KiB and "
        "definitions sent to /definitions/validate",
    )
    stepgate_parse_cpu_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="CPU seconds one document check may take (422 beyond it)",
    )
    stepgate_parse_threads: int = Field(
        2,
        ge=1,
        le=64,
        description="threads the API checks JSON bodies of 4 to 64 KiB and validates starts, "
        "schedules, governed runs and codec payloads in",
    )
    stepgate_parse_per_key: int = Field(
        2,
        ge=1,
        le=1_000,
        description="requests of one key's principal being checked or validated at once, per API "
        "process (429 parse_busy beyond it)",
    )
