"""JSON Schema (Draft 2020-12) whose cost is bounded, for schemas and values from clients.

`jsonschema` evaluates `pattern` with Python's backtracking `re` (`^(a+)+$` against 28 characters
took 7.6 s), follows `$ref` wherever it points, compares `uniqueItems` pairwise and recurses as
deep as the schema leads. Here patterns run on RE2 (linear time; patterns RE2 cannot compile are
refused when the schema is checked), `$ref` stays inside the schema, schemas are bounded in size
and depth, and one validation stops after MAX_WORK keyword evaluations.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing.exceptions import Unresolvable

from activities.documents import NOWHERE, Loc, format_loc, json_issues, json_pointer
from activities.jsonschema_re2 import MAX_PATTERN_CHARS, compile_pattern, pattern_problem, regex

__all__ = [
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_NODES",
    "MAX_WORK",
    "schema_issues",
    "shared_work",
    "value_issues",
]

# Values (keywords, subschemas, enum items...) in one schema, and their nesting.
MAX_SCHEMA_NODES = 5_000
MAX_SCHEMA_DEPTH = 32
# Keyword evaluations in one validation: about a second of CPU at worst. A schema that recurses
# through `$ref` can otherwise try every branch of every level (exponential in the input depth).
MAX_WORK = 100_000
# Errors reported per validation, and characters of each message (they quote the value).
MAX_ERRORS = 50
MAX_MESSAGE_CHARS = 300

# Keywords whose value is one subschema, a list of them, or a map of names to them.
_ONE = {
    "additionalProperties",
    "contains",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
}
_LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
_MAP = {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
_REFS = ("$ref", "$dynamicRef")


class _OverBudget(Exception):
    pass


_BUDGET: contextvars.ContextVar[list[int]] = contextvars.ContextVar("jsonschema_budget")
# [what is left, the limit] of a budget shared by several checks (see shared_work).
_SHARED: contextvars.ContextVar[list[int]] = contextvars.ContextVar("jsonschema_shared")


def schema_issues(schema: Any) -> list[tuple[Loc, str]]:
    """Everything that makes `schema` unsafe or invalid, each with its loc inside the schema."""
    found = _walk(schema)
    if found:
        return found
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        return [(tuple(err.absolute_path), f"not a valid JSON Schema: {_short(err.message)}")]
    # A schema that refers to itself without consuming the value never ends: find out now.
    probes: tuple[Any, ...] = (None, {}, [])
    for probe in probes:
        _, unchecked = _run(schema, probe, max_errors=1)
        if unchecked:
            return [((), unchecked)]
    return []


def _walk(schema: Any) -> list[tuple[Loc, str]]:
    """Size, depth, patterns, refs: without recursion, knowing which values are subschemas."""
    found: list[tuple[Loc, str]] = []
    anchors: set[str] = set()
    refs: list[tuple[Loc, str]] = []
    nodes = 0
    todo: list[tuple[Loc, Any, bool]] = [((), schema, True)]
    while todo:
        loc, node, is_schema = todo.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            return [((), f"a schema has at most {MAX_SCHEMA_NODES} values")]
        if len(loc) > MAX_SCHEMA_DEPTH:
            return [(loc, f"a schema is nested at most {MAX_SCHEMA_DEPTH} levels")]
        if isinstance(node, list):
            todo.extend(((*loc, i), v, False) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if not is_schema:
                todo.append(((*loc, key), value, False))
                continue
            here = (*loc, key)
            if key in _ONE:
                todo.append((here, value, True))
            elif key in _LIST and isinstance(value, list):
                todo.extend(((*here, i), v, True) for i, v in enumerate(value))
            elif key in _MAP and isinstance(value, dict):
                todo.extend(((*here, k), v, True) for k, v in value.items())
                if key == "patternProperties":
                    found += [((*here, k), p) for k in value if (p := pattern_problem(k))]
            else:
                todo.append((here, value, False))
            if key == "pattern" and (problem := pattern_problem(value)):
                found.append((here, problem))
            elif key in _REFS and isinstance(value, str):
                refs.append((here, value))
            elif key in ("$anchor", "$dynamicAnchor") and isinstance(value, str):
                anchors.add(value)
            elif key == "$id" and loc:
                found.append((here, "$id is accepted only at the top of a schema"))
        if is_schema and "unevaluatedProperties" in node and "patternProperties" in node:
            found.append((loc, "unevaluatedProperties cannot be combined with patternProperties"))
    found += [(loc, msg) for loc, ref in refs if (msg := _ref_problem(schema, ref, anchors))]
    return found


def _ref_problem(root: Any, ref: str, anchors: set[str]) -> str | None:
    """Only references into this schema, and only to something that exists."""
    if not ref.startswith("#"):
        return f"only local references (#/...) are accepted, not {_short(ref)!r}"
    fragment = ref[1:]
    if fragment and not fragment.startswith("/"):
        return None if fragment in anchors else f"no $anchor named {_short(fragment)!r}"
    if json_pointer(root, fragment) is NOWHERE:
        return f"reference {_short(ref)!r} points at nothing in the schema"
    return None


def _short(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(instance: Any) -> str:
    """A value as quoted in a message: short, so that the pattern it missed stays visible."""
    return _short(repr(instance), 60)


def value_issues(
    schema: dict[str, Any], value: Any, max_errors: int = MAX_ERRORS
) -> list[tuple[Loc, str]]:
    """Where `value` breaks `schema` (already passed schema_issues), at most `max_errors`."""
    deep = list(json_issues(value))
    if deep:
        return deep[:max_errors]
    errors, unchecked = _run(schema, value, max_errors)
    if unchecked:
        return [((), unchecked)]
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    return [(tuple(e.absolute_path), _message(e)) for e in errors]


def _message(err: ValidationError) -> str:
    """The error's message, short. jsonschema's quote the whole value first (`'xx…' is too
    long`): cut, the reason went with the tail, so a long one names the keyword it broke."""
    if len(err.message) <= MAX_MESSAGE_CHARS:
        return err.message
    return _short(f"{_value(err.instance)} breaks {err.validator}: {err.validator_value!r}")


@contextlib.contextmanager
def shared_work(limit: int) -> Iterator[None]:
    """Every check inside draws from one budget of `limit` keyword evaluations (each check still
    at most MAX_WORK), so that many schemas in one document cost no more than `limit` together:
    500 steps' output schemas at MAX_WORK each would be minutes of CPU for one request."""
    token = _SHARED.set([limit, limit])
    try:
        yield
    finally:
        _SHARED.reset(token)


def _run(schema: Any, value: Any, max_errors: int) -> tuple[list[ValidationError], str | None]:
    """The first `max_errors` errors, or why the value could not be checked at all."""
    shared = _SHARED.get(None)
    allowed = MAX_WORK if shared is None else max(min(MAX_WORK, shared[0]), 0)
    budget = [allowed]
    token = _BUDGET.set(budget)
    errors: list[ValidationError] = []
    try:
        for err in _Safe(schema, format_checker=_FORMATS).iter_errors(value):
            errors.append(err)
            if len(errors) >= max_errors:
                break
    except _OverBudget:
        if allowed < MAX_WORK and shared is not None:
            return [], f"checking the schemas of this document takes more than {shared[1]} steps"
        return [], f"checking the value against the schema takes more than {MAX_WORK} steps"
    except RecursionError:
        return [], "the schema refers to itself without end"
    except (Unresolvable, OverflowError, re2.error) as err:
        return [], f"the value could not be checked against the schema: {_short(str(err))}"
    finally:
        _BUDGET.reset(token)
        if shared is not None:
            shared[0] -= allowed - max(budget[0], 0)
    return errors, None


# A keyword's implementation; the validator is typed Any: the protocol lacks descend().
Keyword = Callable[[Any, Any, Any, dict[str, Any]], Iterator[ValidationError] | None]


def _counted(keyword: Keyword) -> Keyword:
    def run(v: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
        budget = _BUDGET.get(None)
        if budget is not None:
            budget[0] -= 1
            if budget[0] < 0:
                raise _OverBudget
        result = keyword(v, value, instance, schema)
        if result is not None:
            yield from result

    return run


def _pattern(v: Any, pattern: str, instance: Any, _: dict[str, Any]) -> Iterator[ValidationError]:
    if v.is_type(instance, "string") and not regex(pattern).search(instance):
        yield ValidationError(f"{_value(instance)} does not match {_short(pattern, 200)!r}")


def _pattern_properties(
    v: Any, patterns: dict[str, Any], instance: Any, _: dict[str, Any]
) -> Iterator[ValidationError]:
    if not v.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        compiled = regex(pattern)
        for key, item in instance.items():
            if compiled.search(key):
                yield from v.descend(item, subschema, path=key, schema_path=pattern)


def _additional_properties(
    v: Any, extra_schema: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not v.is_type(instance, "object"):
        return
    named = schema.get("properties", {})
    regexes = [regex(p) for p in schema.get("patternProperties", {})]
    extras = [k for k in instance if k not in named and not any(r.search(k) for r in regexes)]
    if v.is_type(extra_schema, "object"):
        for key in extras:
            yield from v.descend(instance[key], extra_schema, path=key)
    elif extra_schema is False and extras:
        listed = ", ".join(repr(k) for k in sorted(extras)[:10])
        yield ValidationError(_short(f"additional properties are not allowed ({listed})"))


def _unique_items(
    v: Any, unique: Any, instance: Any, _: dict[str, Any]
) -> Iterator[ValidationError]:
    # jsonschema compares unhashable items pairwise: quadratic in the array's length.
    if not unique or not v.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"array has non-unique elements ({_value(item)})")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    """A hashable key equal exactly when JSON Schema calls two values equal (1 == 1.0, not True)."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value if not isinstance(value, float) or math.isfinite(value) else str(value))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(_canonical(v) for v in value))  # depth bounded by json_issues
    if isinstance(value, dict):
        return ("d", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("o", repr(value))


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("regex", raises=re2.error)
def _isregex(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return len(value) <= MAX_PATTERN_CHARS and compile_pattern(value) is not None


_Safe = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # untyped in jsonschema
    Draft202012Validator,
    validators={
        name: _counted(keyword)
        for name, keyword in {
            **Draft202012Validator.VALIDATORS,
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
            "uniqueItems": _unique_items,
        }.items()
    },
)


def describe(issues: list[tuple[Loc, str]], prefix: str) -> list[tuple[str, str]]:
    """(path, message) pairs, the path prefixed (`input`, `input.properties.x`)."""
    return [(format_loc(loc, prefix) or prefix, message) for loc, message in issues]
