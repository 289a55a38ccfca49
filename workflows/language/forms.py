"""A gate's `form:`: the JSON Schema of what a reviewer answers besides the action, restricted to
the flat object MCP form elicitation allows (so the same form can be offered to an AI client).

A form is an object of fields, each a string (with `format` date, date-time, email or uri, or
`minLength`/`maxLength`), a number or an integer (`minimum`/`maximum`), a boolean, or a string
enum (`enum`, optionally with `enumNames`, or `oneOf` of `{const, title}`); each may carry `title`,
`description` and `default`. Anything else is refused, naming the keyword and where it is.
Whether a value fits one field (`field_issue`) is decided here once: a field's default is checked
with it, and so is every answer (workflows/rules/forms.py). Pure functions."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from activities.documents import canonical_json
from workflows.language.limits import (
    MAX_FORM_BYTES,
    MAX_FORM_DESCRIPTION_CHARS,
    MAX_FORM_FIELD_CHARS,
    MAX_FORM_FIELDS,
    MAX_FORM_OPTIONS,
    MAX_FORM_STRING_CHARS,
    MAX_FORM_TITLE_CHARS,
)

FORMATS = ("date", "date-time", "email", "uri")
FIELD_TYPES = ("string", "number", "integer", "boolean")
FORM_KEYS = frozenset({"type", "properties", "required", "title", "description"})
_COMMON = frozenset({"type", "title", "description", "default"})
FIELD_KEYS = {
    "string": _COMMON | {"minLength", "maxLength", "format", "enum", "enumNames", "oneOf"},
    "number": _COMMON | {"minimum", "maximum"},
    "integer": _COMMON | {"minimum", "maximum"},
    "boolean": _COMMON,
}
# A field's name is one segment of a reference, so it is a plain identifier.
FIELD_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{MAX_FORM_FIELD_CHARS - 1}}}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
# Linear patterns over text already bounded to MAX_FORM_STRING_CHARS.
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

Found = list[tuple[str, str]]


def _not_allowed(path: str, key: str) -> tuple[str, str]:
    return path, f'keyword "{key}" is not allowed in a gate form'


def _text(found: Found, path: str, value: Any, most: int) -> None:
    if not isinstance(value, str):
        found.append((path, "must be a string"))
    elif len(value) > most:
        found.append((path, f"at most {most} characters (got {len(value)})"))


def form_issues(form: Any, at: str = "form") -> Found:
    """Every way `form` leaves the subset, each as (path, message), the path starting at `at`."""
    if not isinstance(form, dict):
        return [(at, "a gate form is a JSON Schema object: {type: object, properties: {...}}")]
    found: Found = [_not_allowed(f"{at}.{k}", k) for k in form if k not in FORM_KEYS]
    if form.get("type") != "object":
        found.append((f"{at}.type", 'a gate form has type "object"'))
    for key, most in (("title", MAX_FORM_TITLE_CHARS), ("description", MAX_FORM_DESCRIPTION_CHARS)):
        if key in form:
            _text(found, f"{at}.{key}", form[key], most)
    props = form.get("properties")
    if not isinstance(props, dict) or not props:
        found.append((f"{at}.properties", "a gate form lists its fields under properties"))
        props = {}
    elif len(props) > MAX_FORM_FIELDS:
        found.append((f"{at}.properties", f"at most {MAX_FORM_FIELDS} fields (got {len(props)})"))
        props = {}
    for name, field in props.items():
        where = f"{at}.properties.{name}"
        if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
            found.append(
                (
                    where,
                    f"a field's name is a letter or _ then letters, digits or _ "
                    f"(at most {MAX_FORM_FIELD_CHARS} characters)",
                )
            )
            continue
        found += field_definition_issues(field, where)
    required = form.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        found.append((f"{at}.required", "must be a list of field names"))
    else:
        for name in required:
            if name not in props:
                found.append((f"{at}.required", f"{name!r} is not a field of the form"))
        if len(set(required)) != len(required):
            found.append((f"{at}.required", "names a field twice"))
    if not found and len(canonical_json(form)) > MAX_FORM_BYTES:
        found.append((at, f"a gate form takes at most {MAX_FORM_BYTES} bytes of JSON"))
    return found


def field_definition_issues(field: Any, at: str) -> Found:
    """How one field's schema leaves the subset."""
    if not isinstance(field, dict):
        return [(at, "a field is a JSON Schema object with a type")]
    kind = field.get("type")
    if kind not in FIELD_TYPES:
        return [(f"{at}.type", f"a field's type is one of {', '.join(FIELD_TYPES)}")]
    found: Found = [_not_allowed(f"{at}.{k}", k) for k in field if k not in FIELD_KEYS[kind]]
    if "title" in field:
        _text(found, f"{at}.title", field["title"], MAX_FORM_TITLE_CHARS)
    if "description" in field:
        _text(found, f"{at}.description", field["description"], MAX_FORM_DESCRIPTION_CHARS)
    if kind == "string":
        found += _string_issues(field, at)
    elif kind in ("number", "integer"):
        found += _bounds_issues(field, at, kind)
    if not found and "default" in field:
        wrong = field_issue(field, field["default"])
        if wrong is not None:
            found.append((f"{at}.default", wrong))
    return found


def _string_issues(field: dict[str, Any], at: str) -> Found:
    found: Found = []
    for key in ("minLength", "maxLength"):
        value = field.get(key)
        if key in field and (type(value) is not int or not 0 <= value <= MAX_FORM_STRING_CHARS):
            found.append((f"{at}.{key}", f"an integer from 0 to {MAX_FORM_STRING_CHARS}"))
    if not found and field.get("minLength", 0) > field.get("maxLength", MAX_FORM_STRING_CHARS):
        found.append((f"{at}.minLength", "is more than maxLength"))
    if "format" in field and field["format"] not in FORMATS:
        found.append((f"{at}.format", f"one of {', '.join(FORMATS)}"))
    choices = [k for k in ("enum", "oneOf") if k in field]
    if len(choices) == 2:
        found.append((f"{at}.oneOf", "a field has enum or oneOf, not both"))
    if choices and ("format" in field or "minLength" in field or "maxLength" in field):
        found.append((f"{at}.{choices[0]}", "a choice takes no format, minLength or maxLength"))
    if "enumNames" in field and "enum" not in field:
        found.append((f"{at}.enumNames", "goes with enum"))
    if "enum" in field:
        found += _options(field["enum"], f"{at}.enum")
        names = field.get("enumNames")
        if "enumNames" in field and (
            not isinstance(names, list)
            or not isinstance(field["enum"], list)
            or len(names) != len(field["enum"])
            or not all(isinstance(n, str) and len(n) <= MAX_FORM_TITLE_CHARS for n in names)
        ):
            found.append((f"{at}.enumNames", "a title for each of enum, in order"))
    if "oneOf" in field:
        found += _one_of(field["oneOf"], f"{at}.oneOf")
    return found


def _options(values: Any, at: str) -> Found:
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_FORM_OPTIONS:
        return [(at, f"a list of 1 to {MAX_FORM_OPTIONS} strings")]
    if not all(isinstance(v, str) and len(v) <= MAX_FORM_TITLE_CHARS for v in values):
        return [(at, f"each choice is a string of at most {MAX_FORM_TITLE_CHARS} characters")]
    if len(set(values)) != len(values):
        return [(at, "lists a choice twice")]
    return []


def _one_of(entries: Any, at: str) -> Found:
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_FORM_OPTIONS:
        return [(at, f"a list of 1 to {MAX_FORM_OPTIONS} {{const, title}} choices")]
    found: Found = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            found.append((f"{at}[{i}]", "a choice is {const: <string>, title: <string>}"))
            continue
        found += [_not_allowed(f"{at}[{i}].{k}", k) for k in entry if k not in ("const", "title")]
        for key in ("const", "title"):
            _text(found, f"{at}[{i}].{key}", entry.get(key), MAX_FORM_TITLE_CHARS)
    if not found:
        found += _options([e["const"] for e in entries], at)
    return found


def _bounds_issues(field: dict[str, Any], at: str, kind: str) -> Found:
    found: Found = []
    for key in ("minimum", "maximum"):
        if key in field and not _number(field[key], integer=kind == "integer"):
            found.append(
                (f"{at}.{key}", f"must be {'an integer' if kind == 'integer' else 'a number'}")
            )
    if not found and field.get("minimum", -math.inf) > field.get("maximum", math.inf):
        found.append((f"{at}.minimum", "is more than maximum"))
    return found


def _number(value: Any, *, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return not integer or isinstance(value, int) or value.is_integer()


def choices(field: dict[str, Any]) -> list[str] | None:
    """The values an enum field takes (its `enum`, or its `oneOf` consts); None: not an enum."""
    if isinstance(field.get("enum"), list):
        return list(field["enum"])
    if isinstance(field.get("oneOf"), list):
        return [e["const"] for e in field["oneOf"]]
    return None


def field_issue(field: dict[str, Any], value: Any) -> str | None:
    """Why `value` does not answer the (valid) field `field`, or None."""
    kind = field["type"]
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind in ("number", "integer"):
        if not _number(value, integer=kind == "integer"):
            return f"must be {'an integer' if kind == 'integer' else 'a number'}"
        if "minimum" in field and value < field["minimum"]:
            return f"must be at least {field['minimum']}"
        if "maximum" in field and value > field["maximum"]:
            return f"must be at most {field['maximum']}"
        return None
    if not isinstance(value, str):
        return "must be a string"
    allowed = choices(field)
    if allowed is not None:
        return None if value in allowed else f"must be one of {', '.join(allowed[:20])}"
    most = field.get("maxLength", MAX_FORM_STRING_CHARS)
    if len(value) > most:
        return f"at most {most} characters (got {len(value)})"
    if len(value) < field.get("minLength", 0):
        return f"at least {field['minLength']} characters"
    fmt = field.get("format")
    return None if fmt is None or _formatted(fmt, value) else f"must be a {fmt}"


def _formatted(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            return bool(_DATE.fullmatch(value)) and bool(date.fromisoformat(value))
        if fmt == "date-time":
            text = value.replace("z", "Z").replace("t", "T")
            return bool(_DATE_TIME.fullmatch(value)) and bool(datetime.fromisoformat(text))
        if fmt == "email":
            return bool(_EMAIL.fullmatch(value))
        if any(c.isspace() for c in value):
            return False
        parts = urlsplit(value)
    except ValueError:  # a date out of range, a malformed IPv6 host
        return False
    return bool(_SCHEME.fullmatch(parts.scheme)) and bool(parts.netloc or parts.path)


def defaults(form: dict[str, Any]) -> dict[str, Any]:
    """The fields that name a default, with it."""
    props = form.get("properties") or {}
    return {k: f["default"] for k, f in props.items() if isinstance(f, dict) and "default" in f}
