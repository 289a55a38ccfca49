"""Durations as written in definitions: `500ms`, `30s`, `5m`, `24h`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

from workflows.language.limits import MAX_DURATION, MAX_DURATION_CHARS

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Below a millisecond a duration rounds to nothing, and Temporal reads a zero timeout as "none".
MIN_DURATION = timedelta(milliseconds=1)


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with the accepted forms when it is malformed, and
    with the bounds when it is below 1ms or above MAX_DURATION."""
    if len(text) > MAX_DURATION_CHARS:
        raise ValueError(f"bad duration: at most {MAX_DURATION_CHARS} characters")
    cleaned = text.strip().replace(" ", "")
    if not _WHOLE.match(cleaned):
        raise ValueError(
            f"bad duration {text!r}: use a number and a unit (ms, s, m, h, d), e.g. '30s' or '1h30m'"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))
    # Compared as a float first: timedelta itself overflows on very large values.
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"bad duration {text!r}: at most {MAX_DURATION.days}d")
    if seconds < MIN_DURATION.total_seconds():
        raise ValueError(f"bad duration {text!r}: must be at least 1ms")
    return timedelta(seconds=seconds)
