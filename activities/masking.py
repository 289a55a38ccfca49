"""Masking for logs, previews and status: sensitive keys' values and known secret values become
***. Pure functions, safe for the rules of a run to call."""

from __future__ import annotations

import functools
import itertools
import json
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
    values = frozenset(values)  # once: the values' pattern is looked up by them
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
    """`text` with every secret value in it replaced by ***, in any of the forms the outside world
    echoes it back in: any upper and lower case (a host name comes back lower-cased), and URL
    encoded, character by character or not (`%2F` or `%2f` or `/`, a space as `+` or `%20`)."""
    if not values:
        return text
    pattern = secret_pattern(frozenset(values))
    return text if pattern is None else pattern.sub(MASK, text)


def mask_values(obj: Any, values: set[str] | frozenset[str]) -> Any:
    """Copy of JSON-like `obj` with known secret values masked in every string, keys included
    (unlike `mask`, sensitive keys keep their values: this is data later steps read)."""
    values = frozenset(values)
    if isinstance(obj, dict):
        return {mask_values(k, values): mask_values(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_values(v, values) for v in obj]
    if isinstance(obj, str):
        return mask_text(obj, values)
    return obj


# A value shorter than this is not masked by value: it would mask unrelated text.
MIN_MASKED_CHARS = 4


@functools.lru_cache(maxsize=256)
def secret_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    """One pattern finding every value (longest first) in every form `mask_text` masks; None when
    no value is long enough to mask."""
    kept = sorted((v for v in values if len(v) >= MIN_MASKED_CHARS), key=lambda v: (-len(v), v))
    if not kept:
        return None
    # Every match starts with a value's first character or `%` (or `+`/space for a space or a
    # `+`): looking ahead for one of those first lets the engine skip other positions quickly
    # (4 to 10 times faster than trying each value's alternatives at every position).
    first = (
        {"%"} | {v[0] for v in kept} | ({"+", " "} if any(v[0] in "+ " for v in kept) else set())
    )
    starts = "[" + "".join(re.escape(c) for c in sorted(first)) + "]"
    body = "|".join(_forms(v) for v in kept)
    return re.compile(f"(?={starts})(?:{body})", re.IGNORECASE)


def _forms(value: str) -> str:
    return "".join(_char_forms(c) for c in value)


def _char_forms(c: str) -> str:
    """One character as itself or percent-encoded (its UTF-8 bytes), a space also as `+` and a
    `+` also as a space (form encoding, and a server that decoded it so)."""
    encoded = "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
    forms = [re.escape(c), re.escape(encoded)]
    if c == " ":
        forms.append(r"\+")
    elif c == "+":
        forms.append(" ")
    return "(?:" + "|".join(forms) + ")"


def mask_json_text(text: str) -> str:
    """JSON text with sensitive keys' values masked as `mask` masks them in the parsed value;
    also text cut short (a summary's first characters), where a value the cut went through is
    masked to the end. Text with nothing to mask comes back unchanged."""
    try:
        value = json.loads(text)
    except ValueError:
        return _mask_json_prefix(text)
    masked = mask(value)
    return text if masked == value else json.dumps(masked, sort_keys=True)


_JSON = json.JSONDecoder()
_SPACE = " \t\n\r"


def _mask_json_prefix(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] != '"':
            j = text.find('"', i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        end = _string_end(text, i)
        if end is None:  # cut inside a string: nothing follows it
            out.append(text[i:])
            break
        out.append(text[i:end])
        colon = end
        while colon < n and text[colon] in _SPACE:
            colon += 1
        if colon < n and text[colon] == ":" and _sensitive_json_key(text[i:end]):
            start = colon + 1
            while start < n and text[start] in _SPACE:
                start += 1
            out.append(text[end:start])
            try:
                value, stop = _JSON.raw_decode(text, start)
            except ValueError:  # the cut went through this value: the rest of the text is it
                out.append(f'"{MASK}"')
                break
            out.append(text[start:stop] if value in (None, "") else f'"{MASK}"')
            i = stop
            continue
        i = end
    return "".join(out)


def _string_end(text: str, start: int) -> int | None:
    """Where the JSON string starting at `start` (a quote) ends, past its closing quote."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return None


def _sensitive_json_key(quoted: str) -> bool:
    try:
        key = json.loads(quoted)
    except ValueError:
        return False
    return isinstance(key, str) and is_sensitive_key(key)
