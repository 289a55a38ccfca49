"""What JSON types a JSON Schema allows for the value at a path inside the value it describes:
a sound over-approximation (constraints it does not follow only widen the answer), or None when
the schema does not say."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The one path walker's rule for list indexes (`items.0`, `items.-1`): a reference follows it.
from activities.documents import NOWHERE, json_pointer
from activities.models import _INDEX

Types = frozenset[str]

# `$ref`s followed, and anyOf/allOf levels entered, without moving along the path.
MAX_HOPS = 32

_ORDER = ("object", "array", "string", "number", "integer", "boolean", "null")
_NOUN = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "null": "null",
}


@dataclass
class TypeWalk:
    """One walk over a schema: its root (for `$ref`s) and the definition's shared budget."""

    root: Any
    budget: list[int]

    def types_at(self, node: Any, path: tuple[str | int, ...], hops: int = 0) -> Types | None:
        """The JSON types a value at `path` under `node` can have; None when unknown."""
        self.budget[0] -= 1
        if self.budget[0] < 0 or hops > MAX_HOPS:
            return None
        if node is True or node == {}:
            return None
        if not isinstance(node, dict):
            return frozenset()  # `false`: nothing fits (and nothing is said about it)
        found: list[Types | None] = []
        if path:
            found.append(self._child_types(node, path, hops))
        else:
            found.append(_own_types(node))
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.append(self.types_at(_pointer(self.root, ref), path, hops + 1))
        for branch in _list(node.get("allOf")):
            found.append(self.types_at(branch, path, hops + 1))
        for key in ("anyOf", "oneOf"):
            branches = node.get(key)
            if isinstance(branches, list):
                found.append(_union(self.types_at(b, path, hops + 1) for b in branches))
        return _intersect(found)

    def _child_types(self, node: Any, path: tuple[str | int, ...], hops: int) -> Types | None:
        """Types at `path` through the node's own `properties` / `items`: as an object's field,
        or as an array's item (a digit key of a reference may be either)."""
        seg, rest = path[0], path[1:]
        own = _own_types(node)
        options: list[Types | None] = []
        if isinstance(seg, str) and (own is None or "object" in own):
            sub = _property(node, seg)
            options.append(None if sub is None else self.types_at(sub, rest, hops=0))
        index = seg if isinstance(seg, int) else int(seg) if _INDEX.fullmatch(seg) else None
        if index is not None and (own is None or "array" in own):
            sub = _item(node, index)
            options.append(None if sub is None else self.types_at(sub, rest, hops=0))
        return _union(options) if options else frozenset()


def _own_types(node: dict[str, Any]) -> Types | None:
    """What `type`, `const` and `enum` of this node allow (not its applicators)."""
    found: list[Types | None] = []
    kind = node.get("type")
    if isinstance(kind, str):
        found.append(_widen(frozenset({kind})))
    elif isinstance(kind, list):
        found.append(_widen(frozenset(k for k in kind if isinstance(k, str))))
    if "const" in node:
        found.append(_widen(frozenset({_type_of(node["const"])})))
    if isinstance(node.get("enum"), list):
        found.append(_widen(frozenset(_type_of(v) for v in node["enum"])))
    return _intersect(found)


def _property(node: dict[str, Any], key: str) -> Any:
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        return props[key]
    if node.get("patternProperties"):
        return None  # which pattern matches is not worth guessing
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _item(node: dict[str, Any], index: int) -> Any:
    prefix = node.get("prefixItems")
    if isinstance(prefix, list) and prefix:
        if 0 <= index < len(prefix):
            return prefix[index]
        if index < 0:
            return None
    items = node.get("items")
    return items if isinstance(items, dict) else None


def _pointer(root: Any, ref: str) -> Any:
    """A local `#/...` reference (jsonschema_safe allows no other); anything else is unknown."""
    found = json_pointer(root, ref[1:]) if ref.startswith("#") else NOWHERE
    return True if found is NOWHERE else found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _widen(types: Types) -> Types:
    """A JSON Schema `number` includes the integers."""
    return types | {"integer"} if "number" in types else types


def _intersect(found: list[Types | None]) -> Types | None:
    known = [t for t in found if t is not None]
    return functools.reduce(frozenset.intersection, known) if known else None


def _union(found: Iterable[Types | None]) -> Types | None:
    out: set[str] = set()
    for types in found:
        if types is None:
            return None
        out |= types
    return frozenset(out)


def describe(types: Types, *, drop_null: bool = False) -> str:
    shown = [t for t in _ORDER if t in types and not (t == "integer" and "number" in types)]
    if drop_null and len(shown) > 1:
        shown.remove("null")  # how pydantic marks an optional field; not worth saying
    return " or ".join(_NOUN[t] for t in shown)
