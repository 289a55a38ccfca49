"""YAML and JSON documents from files and request bodies: one parser for the catalog, API keys and
the API, so every reader gets the same limits.

Both parsers refuse, before anything else sees the data: YAML anchors and aliases (a 500-byte
alias bomb expands to gigabytes), nesting deeper than MAX_DEPTH, numbers longer than
MAX_NUMBER_CHARS, NaN and Infinity, and strings that are not valid Unicode. Every refusal says
where (a `loc` of keys and indexes, or a line).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

# The C parser is many times faster; the pure-Python one behaves the same where libyaml is missing.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Nesting of any document (a definition, a run input, a request body).
MAX_DEPTH = 64
# Characters of one number: Python refuses to convert more than 4,300 digits, and no real value
# needs 100.
MAX_NUMBER_CHARS = 100
# Characters of a document read from a file (request bodies are bounded by the API first).
MAX_DOCUMENT_CHARS = 1_048_576
# Refusals listed at most, so a hostile document cannot make the answer large.
MAX_ISSUES = 20

# Tags a plain data document may carry: JSON's types. Everything else (!!binary, !!set,
# !!timestamp, application tags) has no JSON form.
_JSON_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
}
_NUMBER_START = set("+-.0123456789")
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
    or with the loc of each value that breaks a limit."""
    if len(text) > max_chars:
        raise DocumentError(f"a document is at most {max_chars} characters")
    try:
        _scan(text)
        data = yaml.load(text, Loader=_LOADER)  # a safe loader; aliases refused above
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or err
        raise DocumentError(f"not valid YAML or JSON{where}: {problem}", syntax=True) from None
    _raise_issues(data)
    return data


def _scan(text: str) -> None:
    """Check the event stream before anything is built: no anchor, alias or foreign tag, bounded
    nesting, no overlong number."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise DocumentError(f"YAML anchors and aliases are not accepted (line {line})")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _JSON_TAGS and tag != "!":
            raise DocumentError(f"YAML tag {tag[:40]!r} is not accepted (line {line})")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise DocumentError(f"nested deeper than {MAX_DEPTH} levels (line {line})")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent) and _long_number(event):
            raise DocumentError(f"a number is at most {MAX_NUMBER_CHARS} characters (line {line})")


def _long_number(event: yaml.ScalarEvent) -> bool:
    value = event.value
    if len(value) <= MAX_NUMBER_CHARS or event.style or not event.implicit[0]:
        return False
    if value[0] not in _NUMBER_START:
        return False
    resolver = yaml.resolver.Resolver()
    tag = resolver.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]  # untyped in the stubs
    return tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


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
    _raise_issues(data)
    return data


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


def _raise_issues(data: Any) -> None:
    issues = list(_limit(json_issues(data)))
    if issues:
        first = issues[0]
        raise DocumentError(f"{format_loc(first[0]) or '(document)'}: {first[1]}", issues)


def _limit(found: Iterator[tuple[Loc, str]]) -> Iterator[tuple[Loc, str]]:
    for n, issue in enumerate(found):
        if n >= MAX_ISSUES:
            return
        yield issue


def json_issues(value: Any, max_depth: int = MAX_DEPTH) -> Iterator[tuple[Loc, str]]:
    """Values JSON data must not hold, each with its loc, found without recursion: nesting deeper
    than `max_depth`, NaN and Infinity, numbers over MAX_NUMBER_CHARS, unencodable strings."""
    todo: list[tuple[Loc, Any]] = [((), value)]
    while todo:
        loc, item = todo.pop()
        if isinstance(item, dict | list):
            if len(loc) >= max_depth:
                yield loc, f"nested deeper than {max_depth} levels"
                continue
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and not _encodable(key):
                    yield (
                        (*loc, key.encode("utf-8", "replace").decode()),
                        "key is not valid Unicode",
                    )
                todo.append(((*loc, key), child))
        elif isinstance(item, _Refused):
            yield loc, item.reason
        elif isinstance(item, float) and not math.isfinite(item):
            yield loc, "NaN and Infinity are not JSON numbers"
        elif isinstance(item, int) and item.bit_length() > _MAX_INT_BITS:
            yield loc, f"a number is at most {MAX_NUMBER_CHARS} characters"
        elif isinstance(item, str) and not _encodable(item):
            yield loc, "not valid Unicode (a lone surrogate)"


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
