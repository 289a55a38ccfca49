"""Masking for logs, previews and status: sensitive keys' values and known secret values become
***. Pure functions, safe for the rules of a run to call."""

from __future__ import annotations

import itertools
import re
from typing import Any

MASK = "***"
# Words of a key that mark its value as sensitive; a key is split into words at `_`, `-`, `.`,
# spaces and lower-to-upper case changes, so `access_token` and `X-Api-Key` are sensitive while
# `prompt_tokens` and `total_tokens` (token counts) are not.
_WORDS = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")
_SENSITIVE_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "authorization",
        "auth",
        "cookie",
        "credential",
        "credentials",
        "signature",
        "session",
        "sessionid",
    }
)
_SENSITIVE_PAIRS = frozenset(
    {("api", "key"), ("private", "key"), ("client", "secret"), ("set", "cookie")}
)


def is_sensitive_key(key: str) -> bool:
    """Whether a key's value must be masked: a sensitive word in it (`token`, `password`,
    `authorization`, ...), or `api key` / `private key` as two words."""
    words = [w.lower() for w in _WORDS.split(key) if w]
    if any(w in _SENSITIVE_WORDS for w in words):
        return True
    return any(pair in _SENSITIVE_PAIRS for pair in itertools.pairwise(words))


def mask(obj: Any, values: set[str] | frozenset[str] = frozenset()) -> Any:
    """Copy of `obj` with sensitive keys' values and any known secret value replaced by ***."""
    if isinstance(obj, dict):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_sensitive_key(k) and v not in (None, "")
                else mask(v, values)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [mask(v, values) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj, values)
    return obj


def mask_text(text: str, values: set[str] | frozenset[str]) -> str:
    for value in values:
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text
