"""JSON Patch (RFC 6902): what turns one status into the next, and applying it. A live stream
sends the first status whole and then only these patches; `diff` uses `add`, `remove` and
`replace` with JSON Pointer paths (RFC 6901), which any JSON Patch library applies. Lists are
compared whole first, then by what they share at their start and end and by one shift (a list
that lost entries at its head and gained some at its tail, as the latest audit entries do), and
entry by entry, so a change deep in a long list costs a few operations, not the list."""

from __future__ import annotations

import copy
from typing import Any

from activities.documents import NOWHERE, json_pointer

Op = dict[str, Any]


def pointer(parts: list[str | int]) -> str:
    """The JSON Pointer to `parts` (`~` and `/` in keys escaped)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def diff(old: Any, new: Any) -> list[Op]:
    """Operations that turn `old` into `new`."""
    ops: list[Op] = []
    _diff(old, new, [], ops)
    return ops


def _diff(old: Any, new: Any, at: list[str | int], ops: list[Op]) -> None:
    if type(old) is not type(new):
        ops.append({"op": "replace", "path": pointer(at), "value": new})
    elif isinstance(old, dict):
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": pointer([*at, key])})
        for key, value in new.items():
            if key not in old:
                ops.append({"op": "add", "path": pointer([*at, key]), "value": value})
            else:
                _diff(old[key], value, [*at, key], ops)
    elif isinstance(old, list):
        _lists(old, new, at, ops)
    elif old != new:
        ops.append({"op": "replace", "path": pointer(at), "value": new})


def _lists(old: list[Any], new: list[Any], at: list[str | int], ops: list[Op]) -> None:
    head = 0
    while head < min(len(old), len(new)) and _same(old[head], new[head]):
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and _same(old[-1 - tail], new[-1 - tail]):
        tail += 1
    a, b = old[head : len(old) - tail], new[head : len(new) - tail]
    shift = _shift(a, b)
    if shift:  # a lost `shift` entries at its start; b's last ones are new
        ops += [{"op": "remove", "path": pointer([*at, head])} for _ in range(shift)]
        a = a[shift:]
    for k in range(min(len(a), len(b))):
        _diff(a[k], b[k], [*at, head + k], ops)
    for _ in range(len(b), len(a)):  # a longer: drop its extra entries where they stand
        ops.append({"op": "remove", "path": pointer([*at, head + len(b)])})
    for k in range(len(a), len(b)):
        ops.append({"op": "add", "path": pointer([*at, head + k]), "value": b[k]})


def _same(x: Any, y: Any) -> bool:
    """Equal as JSON: Python's == holds 1 == 1.0 == True, which JSON does not."""
    if type(x) is not type(y):
        return False
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(v, y[k]) for k, v in x.items())
    if isinstance(x, list):
        return len(x) == len(y) and all(map(_same, x, y))
    return bool(x == y)


def _shift(a: list[Any], b: list[Any]) -> int:
    """The smallest k > 0 with b starting with a[k:] (a's head dropped), or 0."""
    if not a or not b:
        return 0
    for k in range(1, len(a)):
        rest = a[k:]
        if len(rest) <= len(b) and all(_same(x, y) for x, y in zip(rest, b, strict=False)):
            return k
    return 0


def apply(doc: Any, ops: list[Op]) -> Any:
    """`doc` with `ops` applied (a copy; `doc` is left as it was)."""
    out = copy.deepcopy(doc)
    for op in ops:
        if not op["path"]:
            out = copy.deepcopy(op["value"])
            continue
        head, _, raw = op["path"].rpartition("/")
        parent = json_pointer(out, head)
        if parent is NOWHERE:
            raise ValueError(f"{op['op']} at {op['path']!r}: no such place")
        last = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif op["op"] == "remove":
                del parent[index]
            else:
                parent[index] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del parent[last]
        else:
            parent[last] = copy.deepcopy(op["value"])
    return out
