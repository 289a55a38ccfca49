"""YAML and JSON documents from files and request bodies: one parser for the catalog, API keys and
the API, so every reader gets the same limits.

Both parsers refuse, before anything else sees the data: YAML anchors and aliases (a 500-byte
alias bomb expands to gigabytes), nesting deeper than MAX_DEPTH, numbers longer than
MAX_NUMBER_CHARS, NaN and Infinity, strings that are not valid Unicode, and documents of more
than MAX_DOCUMENT_VALUES values. Every refusal says where (a `loc` of keys and indexes, or a
line).

The value bound is what bounds the CPU one document costs: YAML is read event by event
(activities.yaml_reader) and refused at the first value past it (1 MiB of `[1,1,...]` holds
520,000 values: about 4 s of CPU to read in full, and 1.5 s more to validate); JSON, which the
C decoder reads fast, is counted before its values are checked one by one.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Nesting of any document (a definition, a run input, a request body).
MAX_DEPTH = 64
# Characters of one number: Python refuses to convert more than 4,300 digits, and no real value
# needs 100.
MAX_NUMBER_CHARS = 100
# Characters of a document read from a file (request bodies are bounded by the API first).
MAX_DOCUMENT_CHARS = 1_048_576
# Values (scalars, lists and mappings) of one parsed document: a 500-step definition with 30
# arguments and 100 needs per step holds about 70,000.
MAX_DOCUMENT_VALUES = 100_000
# Refusals listed at most, so a hostile document cannot make the answer large.
MAX_ISSUES = 20

# An int of MAX_NUMBER_CHARS decimal digits has about this many bits (log2(10) = 3.32).
_MAX_INT_BITS = MAX_NUMBER_CHARS * 10 // 3

Loc = tuple[str | int, ...]


@dataclass
class DocumentError(ValueError):
    """A document that cannot be parsed (`syntax`) or that breaks a limit (each issue with its
    loc)."""

    message: str
    issues: list[tuple[Loc, str]] = field(default_factory=list)
    syntax: bool = False

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class _Refused:
    """Put in place of a value the JSON parser refused, so the walk can report it with its loc."""

    reason: str


def parse_document(text: str, max_chars: int = MAX_DOCUMENT_CHARS) -> Any:
    """YAML (a superset of JSON) to data; raises DocumentError with the line of a syntax error,
    or with the line or loc of each value that breaks a limit."""
    # Imported here: the reader uses this module's limits and errors.
    from activities.yaml_reader import read_yaml

    if len(text) > max_chars:
        raise DocumentError(f"a document is at most {max_chars} characters")
    data = read_yaml(text)
    _raise_issues(data)
    return data


def parse_json(raw: bytes) -> Any:
    """Strict JSON (UTF-8): NaN, Infinity, overlong numbers, deep nesting and lone surrogates
    are refused with their loc; a syntax error says its line and column."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DocumentError(f"not UTF-8 text at byte {err.start}", syntax=True) from None
    try:
        data = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_decimal)
    except json.JSONDecodeError as err:
        raise DocumentError(
            f"not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}", syntax=True
        ) from None
    except RecursionError:
        # The C decoder guards its own recursion; far deeper than MAX_DEPTH, so just say so.
        raise DocumentError(f"nested deeper than {MAX_DEPTH} levels") from None
    _raise_issues(data, MAX_DOCUMENT_VALUES)
    return data


def too_many(where: str = "") -> str:
    return f"a document holds at most {MAX_DOCUMENT_VALUES:,} values{where}"


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON number")


def _integer(text: str) -> int | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"a number is at most {MAX_NUMBER_CHARS} characters")
    return int(text)


def _decimal(text: str) -> float | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"a number is at most {MAX_NUMBER_CHARS} characters")
    value = float(text)
    return value if math.isfinite(value) else _Refused("number out of range")


def _raise_issues(data: Any, max_values: int | None = None) -> None:
    issues = list(_limit(json_issues(data, max_values=max_values)))
    if issues:
        first = issues[0]
        raise DocumentError(f"{format_loc(first[0]) or '(document)'}: {first[1]}", issues)


def _limit(found: Iterator[tuple[Loc, str]]) -> Iterator[tuple[Loc, str]]:
    for n, issue in enumerate(found):
        if n >= MAX_ISSUES:
            return
        yield issue


def json_issues(
    value: Any, max_depth: int = MAX_DEPTH, *, max_values: int | None = None
) -> Iterator[tuple[Loc, str]]:
    """Values JSON data must not hold, each with its loc, found without recursion: nesting deeper
    than `max_depth`, NaN and Infinity, numbers over MAX_NUMBER_CHARS, unencodable strings; with
    `max_values`, more values than that (said at the root, and the walk stops there)."""
    todo: list[tuple[Loc, Any]] = [((), value)]
    seen = 1
    while todo:
        loc, item = todo.pop()
        if isinstance(item, dict | list):
            if len(loc) >= max_depth:
                yield loc, f"nested deeper than {max_depth} levels"
                continue
            seen += len(item)
            if max_values is not None and seen > max_values:
                yield (), too_many()
                return
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and not _encodable(key):
                    yield (
                        (*loc, key.encode("utf-8", "replace").decode()),
                        "key is not valid Unicode",
                    )
                # Most values are plain scalars: checked here rather than queued, which is most
                # of the walk's cost. A value with a problem is queued, so it is reported in the
                # same order as every other.
                if not _plain(child):
                    todo.append(((*loc, key), child))
        elif isinstance(item, _Refused):
            yield loc, item.reason
        elif isinstance(item, float) and not math.isfinite(item):
            yield loc, "NaN and Infinity are not JSON numbers"
        elif isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
            yield loc, f"a number is at most {MAX_NUMBER_CHARS} characters"
        elif isinstance(item, str) and not _encodable(item):
            yield loc, "not valid Unicode (a lone surrogate)"


def _plain(value: Any) -> bool:
    """A scalar the walk has nothing to say about (exact types: a subclass takes the long way)."""
    kind = value.__class__
    if kind is str:
        return bool(value.isascii()) or _encodable(value)
    if kind is int:
        return bool(value.bit_length() <= _MAX_INT_BITS)
    if kind is float:
        return math.isfinite(value)
    return kind is bool or value is None


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canonical_json(value: Any) -> str:
    """The one canonical JSON text of a value: keys sorted, no spaces, Unicode as is; anything
    JSON cannot hold written as its `str`. Equal values, equal texts."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest_of(value: Any) -> str:
    """`sha256:<hex>` of the canonical JSON: what a gate reviews, a request body, an audit chunk."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode()).hexdigest()


# What json_pointer finds where a pointer leads nowhere.
NOWHERE = object()


def json_pointer(root: Any, pointer: str) -> Any:
    """The value a JSON Pointer (RFC 6901, `/a/0/b~1c`; "" is the whole document) names in
    `root`, or NOWHERE (also for text that is not a pointer, such as an anchor's name)."""
    if pointer and not pointer.startswith("/"):
        return NOWHERE
    node = root
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return NOWHERE
    return node


def format_loc(loc: Loc | list[Any], prefix: str = "") -> str:
    """('steps', 2, 'needs') -> 'steps[2].needs': how every error names where it is."""
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out
