"""Durations as written in definitions: `500ms`, `30s`, `5m`, `24h`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with the accepted forms when it is malformed."""
    cleaned = text.strip().replace(" ", "")
    if not _WHOLE.match(cleaned):
        raise ValueError(
            f"bad duration {text!r}: use a number and a unit (ms, s, m, h, d), e.g. '30s' or '1h30m'"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"bad duration {text!r}: must be greater than zero")
    return timedelta(seconds=seconds)
