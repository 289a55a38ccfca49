"""YAML to data in one pass over libyaml's event stream, each event checked before it is used.

PyYAML's own loader first composes the whole document into node objects (for 100,000 values,
100,000 nodes that all live until the end) and only then builds the data: the garbage collector's
passes over those nodes paused every thread of the process, an API's event loop included, for up
to half a second at a time, and the document was read twice (once to check its events,
once to load it). Here each event is checked (anchors, aliases, tags, nesting, overlong numbers,
the number of values) and turned into data at once, so a refusal comes at the first event past a
bound and the only objects that live on are the document's own. Scalars are resolved and built
by PyYAML's safe resolver and constructor, so every value reads as `yaml.safe_load` reads it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml

from activities.documents import (
    MAX_DEPTH,
    MAX_DOCUMENT_VALUES,
    MAX_NUMBER_CHARS,
    DocumentError,
    too_many,
)

# The C parser is many times faster; the pure-Python one behaves the same where libyaml is missing.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_SEQ, _MAP, _MERGE = f"{_TAG}seq", f"{_TAG}map", f"{_TAG}merge"
# Tags a plain data document may carry: JSON's types. Everything else (!!binary, !!set,
# !!timestamp, application tags) has no JSON form.
_JSON_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_NUMBER_START = set("+-.0123456789")
# Stateless for scalars: resolving reads class tables, constructing reads the node alone.
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_SCALARS = yaml.constructor.SafeConstructor.yaml_constructors


class _Mapping:
    """A mapping being read: its data and the key waiting for its value."""

    __slots__ = ("data", "key", "keyed")

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}
        self.key: Any = None
        self.keyed = False


def read_yaml(text: str) -> Any:
    """The one document of `text` as data; DocumentError at the first event that breaks a rule
    (with its line), or a syntax error (`syntax`) with its line and column."""
    try:
        return _read(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or err
        raise DocumentError(f"not valid YAML or JSON{where}: {problem}", syntax=True) from None


def _read(text: str) -> Any:
    open_: list[list[Any] | _Mapping] = []
    root: Any = None
    documents = values = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise DocumentError(f"YAML anchors and aliases are not accepted (line {line})")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _JSON_TAGS and tag != "!":
            raise DocumentError(f"YAML tag {tag[:40]!r} is not accepted (line {line})")
        if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            values += 1
            if values > MAX_DOCUMENT_VALUES:
                raise DocumentError(too_many(f" (line {line})"))
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise DocumentError(
                    f"not valid YAML or JSON at line {line}: expected a single document in the "
                    "stream",
                    syntax=True,
                )
        elif isinstance(event, yaml.ScalarEvent):
            value = _scalar(event, line)
            if open_:
                _add(open_[-1], value, line)
            else:
                root = value
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise DocumentError(f"nested deeper than {MAX_DEPTH} levels (line {line})")
            mapping = isinstance(event, yaml.MappingStartEvent)
            if tag not in (None, "!", _MAP if mapping else _SEQ):
                raise DocumentError(f"YAML tag {tag!r} does not fit a collection (line {line})")
            open_.append(_Mapping() if mapping else [])
        elif isinstance(event, yaml.CollectionEndEvent):
            done = open_.pop()
            value = done.data if isinstance(done, _Mapping) else done
            if open_:
                _add(open_[-1], value, line)
            else:
                root = value
    return root


def _scalar(event: yaml.ScalarEvent, line: int) -> Any:
    """The value of a scalar as PyYAML's safe loader builds it."""
    if _long_number(event):
        raise DocumentError(f"a number is at most {MAX_NUMBER_CHARS} characters (line {line})")
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]  # untyped in the stubs
    if tag == _MERGE:
        # A merge key only ever merges an alias's mapping in (as a value PyYAML refuses it).
        raise DocumentError(f"YAML merge keys (<<) are not accepted (line {line})")
    build = _SCALARS.get(tag) if tag not in (_SEQ, _MAP) else None
    if build is None:
        raise DocumentError(f"YAML tag {tag!r} does not fit a scalar (line {line})")
    node = yaml.ScalarNode(tag, event.value, style=event.style)
    try:
        return build(_CONSTRUCTOR, node)
    except (ValueError, KeyError, TypeError):
        # `!!int abc`, `!!bool maybe`: PyYAML's constructors raise these, not a YAMLError.
        name = tag.removeprefix(_TAG)
        raise DocumentError(
            f"not valid YAML or JSON at line {line}: {event.value[:40]!r} is not a valid {name}",
            syntax=True,
        ) from None


def _add(into: list[Any] | _Mapping, value: Any, line: int) -> None:
    if isinstance(into, list):
        into.append(value)
    elif into.keyed:
        into.data[into.key] = value  # a key seen twice keeps its last value, as PyYAML does
        into.key, into.keyed = None, False
    elif not isinstance(value, Hashable):
        raise DocumentError(
            f"not valid YAML or JSON at line {line}: a mapping key must be a scalar", syntax=True
        )
    else:
        into.key, into.keyed = value, True


def _long_number(event: yaml.ScalarEvent) -> bool:
    value = event.value
    if len(value) <= MAX_NUMBER_CHARS or event.style or not event.implicit[0]:
        return False
    if value[0] not in _NUMBER_START:
        return False
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]  # untyped in the stubs
    return tag in (f"{_TAG}int", f"{_TAG}float")
