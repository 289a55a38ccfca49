"""Forms generated from JSON Schemas (a tool's input, a pipeline's input, a gate's `form`), and
what a submitted form means: each field read back as its type, a 422 naming the field when it
is not one. The browser checks the same constraints first (HTML attributes); the server checks
them again, and the API and the workflow after it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from api.errors import ApiError, invalid
from workflows.language.validation import Issue

# Fields a generated form shows at most; a schema with more is edited as raw JSON.
MAX_FIELDS = 100
PREFIX = "f."
INPUT_TYPES = {"date": "date", "date-time": "datetime-local", "email": "email", "uri": "url"}


@dataclass
class FormField:
    name: str
    label: str
    kind: str  # text | number | integer | boolean | choice | json
    prefix: str = PREFIX
    required: bool = False
    description: str | None = None
    value: Any = None
    options: list[tuple[str, str]] = field(default_factory=list)
    input_type: str = "text"
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    @property
    def html_name(self) -> str:
        return self.prefix + self.name

    @property
    def shown(self) -> str:
        """The value as the control shows it."""
        if self.value is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.value, indent=2, ensure_ascii=False)
        return str(self.value)


def _one_type(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field's schema (`anyOf: [X, {type: null}]`) as X."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        real = [o for o in options if isinstance(o, dict) and o.get("type") != "null"]
        if len(real) == 1 and "const" not in real[0]:
            return {**schema, **real[0]}
    return schema


def fields_of(schema: Any, values: Any = None, prefix: str = PREFIX) -> list[FormField] | None:
    """The form of an object schema, filled with `values` (else each field's default), its
    controls named `prefix` + field; None when the schema cannot be one."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    props: dict[str, Any] = schema["properties"]
    if len(props) > MAX_FIELDS:
        return None
    values = values if isinstance(values, dict) else {}
    required = set(schema.get("required") or [])
    return [
        _field(
            str(name),
            _one_type(spec if isinstance(spec, dict) else {}),
            name in required,
            values.get(name, (spec or {}).get("default") if isinstance(spec, dict) else None),
            prefix,
        )
        for name, spec in props.items()
    ]


def _field(name: str, spec: dict[str, Any], required: bool, value: Any, prefix: str) -> FormField:
    f = FormField(
        name=name,
        prefix=prefix,
        label=str(spec.get("title") or name),
        kind="json",
        required=required,
        description=spec.get("description") if isinstance(spec.get("description"), str) else None,
        value=value,
    )
    kind = spec.get("type")
    options = _choices(spec)
    if options is not None:
        f.kind, f.options = "choice", options
    elif kind == "string":
        f.kind = "text"
        f.input_type = INPUT_TYPES.get(str(spec.get("format")), "text")
        f.min_length = _int(spec.get("minLength"))
        f.max_length = _int(spec.get("maxLength"))
    elif kind in ("number", "integer"):
        f.kind = str(kind)
        f.minimum = _num(spec.get("minimum"))
        f.maximum = _num(spec.get("maximum"))
    elif kind == "boolean":
        f.kind = "boolean"
    return f


def _choices(spec: dict[str, Any]) -> list[tuple[str, str]] | None:
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        names = spec.get("enumNames")
        if isinstance(names, list) and len(names) == len(enum):
            return [(v, str(n)) for v, n in zip(enum, names, strict=True)]
        return [(v, v) for v in enum]
    one = spec.get("oneOf")
    if isinstance(one, list) and one and all(isinstance(o, dict) and "const" in o for o in one):
        if all(isinstance(o["const"], str) for o in one):
            return [(o["const"], str(o.get("title") or o["const"])) for o in one]
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def read_fields(
    fields: list[FormField], form: dict[str, list[str]], where: str, base: Any = None
) -> dict[str, Any]:
    """The object a submitted form stands for: `base` (the values it was filled with) with each
    field's answer; an empty optional field is left out. 422 naming `where.<field>`."""
    out: dict[str, Any] = dict(base) if isinstance(base, dict) else {}
    issues: list[Issue] = []
    for f in fields:
        raw = form[f.html_name][0] if form.get(f.html_name) else None
        path = f"{where}.{f.name}"
        if f.kind == "boolean":
            out[f.name] = raw == "on"
            continue
        if raw is None or raw.strip() == "":
            out.pop(f.name, None)
            if f.required:
                issues.append(Issue(path, "is required"))
            continue
        try:
            out[f.name] = _parse(f, raw)
        except ValueError as err:
            issues.append(Issue(path, str(err)))
    if issues:
        raise invalid(issues, "; ".join(f"{i.path}: {i.message}" for i in issues[:5]))
    return out


def _parse(f: FormField, raw: str) -> Any:
    if f.kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError(f"{raw[:40]!r} is not a whole number") from None
    if f.kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError(f"{raw[:40]!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return int(number) if number.is_integer() and "." not in raw else number
    if f.kind == "choice" and raw not in {v for v, _ in f.options}:
        raise ValueError(f"{raw[:40]!r} is not one of the choices")
    if f.kind == "json":
        return parse_json(raw, f.name)
    if f.input_type == "datetime-local" and len(raw) == 16:
        return raw + ":00Z"  # the control has no seconds nor zone: UTC, as the page says
    return raw


def parse_json(raw: str, where: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ApiError(
            422, "invalid", f"{where}: not JSON ({err.msg} at line {err.lineno})"
        ) from None


def merge_patch_between(old: Any, new: Any) -> Any:
    """The JSON Merge Patch (RFC 7396) that turns `old` into `new`: changed keys with their new
    value, removed keys as null, objects patched key by key."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value or type(old[key]) is not type(value):
            both = isinstance(old[key], dict) and isinstance(value, dict)
            patch[key] = merge_patch_between(old[key], value) if both else value
    return patch


def read_answers(
    fields: list[FormField], form: dict[str, list[str]], required: bool
) -> dict[str, Any] | None:
    """A decision's `response` from the gate form's controls: every required field when
    `required` (approve, modify); otherwise optional, and None when nothing was answered."""
    answered = any(
        (form.get(f.html_name) or [""])[0].strip() for f in fields if f.kind != "boolean"
    )
    if not required and not answered:
        return None
    if not required:
        fields = [FormField(**{**f.__dict__, "required": False}) for f in fields]
    return read_fields(fields, form, "response")
