"""JSON Schema `pattern`s on RE2: linear time, a bounded memory budget per compiled pattern, and
patterns RE2 cannot compile refused with the reason."""

from __future__ import annotations

import functools
from typing import Any

import re2

MAX_PATTERN_CHARS = 1_000

# RE2's memory budget per compiled pattern (its default is 8 MiB): a pattern that needs more is
# refused, and the cache below can hold at most _CACHED of them.
_RE2_MAX_MEM = 1 << 20
_CACHED = 256


def compile_pattern(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the client's mistake, not the log's business
    options.max_mem = _RE2_MAX_MEM
    return re2.compile(pattern, options)


# Schema patterns only (they passed schema_issues); values checked as `format: regex` are not kept.
regex = functools.lru_cache(maxsize=_CACHED)(compile_pattern)


def pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return None  # check_schema reports the type
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"a pattern is at most {MAX_PATTERN_CHARS} characters"
    try:
        regex(pattern)
    except re2.error as err:
        reason = err.args[0].decode(errors="replace") if err.args else "not supported"
        return f"pattern not supported (linear-time RE2 syntax: no backreferences or lookaround): {reason}"
    return None
