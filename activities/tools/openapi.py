"""`openapi.validate`: check an OpenAPI document with the reference validator
(openapi-spec-validator), bounded in size and time, never fetching anything a `$ref` names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from jsonschema_path import SchemaPath
from openapi_spec_validator.shortcuts import get_validator_cls
from openapi_spec_validator.validation.exceptions import ValidatorDetectError
from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.documents import NOWHERE, DocumentError, json_issues, json_pointer, parse_document
from activities.errors import fatal
from activities.registry import sends_to_fields, tool
from activities.tools._budget import BudgetExceeded
from activities.tools._masking import masked_failures
from activities.tools._traced import run_traced

# A document as canonical JSON: a large real API (a hundred operations with their schemas) is
# well under it; the validator's cost grows with it.
MAX_SPEC_BYTES = 262_144
MAX_SPEC_VALUES = 20_000
MAX_REFS = 2_000
MAX_ERRORS = 20
MAX_OPERATIONS = 200
MAX_MESSAGE_CHARS = 500
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
# Keywords that set or move a schema's base URI, after which `#/...` would resolve elsewhere.
_BASE_KEYWORDS = ("$id", "$dynamicRef", "$recursiveRef")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")


class OpenApiValidateInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] | str = Field(
        description="The OpenAPI 3.0/3.1 (or Swagger 2.0) document: an object, or its JSON or "
        f"YAML text; at most {MAX_SPEC_BYTES} bytes as JSON and {MAX_SPEC_VALUES} values. Every "
        "`$ref` must point inside the document (`#/...`): nothing is ever fetched.",
    )
    require_valid: bool = Field(
        True,
        description="Fail the step (OpenApiInvalid, naming the first errors) when the document "
        "is not valid; false returns `valid: false` with the errors instead.",
    )
    timeout_s: float = Field(
        DEFAULT_TIMEOUT_S,
        gt=0,
        le=MAX_TIMEOUT_S,
        description="Time budget of the validation (OpenApiBudgetExceeded past it).",
    )


class OpenApiError(BaseModel):
    path: str = Field(description="Where in the document (a JSON Pointer; empty: the document).")
    message: str = Field(description="What is wrong, cut at 500 characters.")


class OpenApiValidateOutput(BaseModel):
    valid: bool = Field(description="True when the validator found nothing wrong.")
    version: str = Field(description="The document's `openapi` (or `swagger`) version.")
    title: str = Field(description="`info.title`.")
    operations: list[str] = Field(description="`METHOD /path` of each operation (first 200).")
    operations_total: int = Field(description="How many operations the document has.")
    errors: list[OpenApiError] = Field(description="The first 20 errors (empty when valid).")
    document: dict[str, Any] = Field(description="The document that was checked, as data.")


def _refuse(uri: str) -> Any:
    raise ValueError(f"reference {uri!r} is outside the document; nothing is fetched")


class _NothingFetched(dict[str, Any]):
    """Resolver handlers that claim every URI scheme and refuse each: the resolver falls back
    to `urlopen` for a scheme it has no handler for, so an empty mapping would still fetch."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> Any:
        return _refuse


def _walk(value: Any) -> Iterator[tuple[str, Any, Any]]:
    """(JSON Pointer, key, value) of every member of every object in `value`, without recursion."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        where, node = todo.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in pairs:
            here = f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if isinstance(node, dict):
                yield here, key, child
            if isinstance(child, dict | list):
                todo.append((here, child))


def _reference_problems(document: dict[str, Any]) -> list[OpenApiError]:
    """Each `$ref` that does not point inside the document, and each keyword that would move
    where one resolves: refused before the validator sees the document."""
    problems: list[OpenApiError] = []
    refs = 0
    for where, key, value in _walk(document):
        if key in _BASE_KEYWORDS:
            problems.append(OpenApiError(path=where, message=f"{key} is not allowed here"))
        elif key == "$ref":
            refs += 1
            if refs > MAX_REFS:
                problems.append(OpenApiError(path=where, message=f"more than {MAX_REFS} $refs"))
                break
            if not isinstance(value, str) or not value.startswith("#"):
                shown = json.dumps(value)[:200]
                problems.append(
                    OpenApiError(
                        path=where,
                        message=f"$ref {shown} is not a local reference (#/...); "
                        "nothing outside the document is fetched",
                    )
                )
            elif json_pointer(document, unquote(value[1:])) is NOWHERE:
                problems.append(
                    OpenApiError(path=where, message=f"$ref {value[:200]!r} points nowhere")
                )
        if len(problems) >= MAX_ERRORS:
            break
    return problems


def _parsed(document: dict[str, Any] | str) -> dict[str, Any]:
    """The document as data, within its bounds (OpenApiTooLarge / OpenApiUnreadable)."""
    if isinstance(document, str):
        if len(document) > MAX_SPEC_BYTES:
            raise fatal(
                f"the OpenAPI document is {len(document)} characters; at most {MAX_SPEC_BYTES}",
                "OpenApiTooLarge",
            )
        try:
            document = parse_document(document, MAX_SPEC_BYTES)
        except DocumentError as err:
            raise fatal(
                f"the OpenAPI document does not parse: {err}", "OpenApiUnreadable"
            ) from None
        if not isinstance(document, dict):
            raise fatal("the OpenAPI document is not an object", "OpenApiUnreadable")
    issues = list(json_issues(document, max_values=MAX_SPEC_VALUES))
    if issues:
        loc, why = issues[0]
        where = "/".join(str(p) for p in loc)
        raise fatal(
            f"the OpenAPI document breaks a limit at /{where}: {why}"
            + (f" (at most {MAX_SPEC_VALUES} values)" if not loc else ""),
            "OpenApiTooLarge",
        )
    size = len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_SPEC_BYTES:
        raise fatal(
            f"the OpenAPI document is {size} bytes as JSON; at most {MAX_SPEC_BYTES}",
            "OpenApiTooLarge",
        )
    return document


def _error(err: Exception) -> OpenApiError:
    parts = getattr(err, "absolute_path", None) or getattr(err, "path", None) or ()
    path = "".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}" for p in parts)
    message = (getattr(err, "message", None) or str(err)).splitlines()[0]
    return OpenApiError(path=path, message=message[:MAX_MESSAGE_CHARS])


def _validate(document: dict[str, Any]) -> list[OpenApiError]:
    """The reference validator's first errors."""
    try:
        cls = get_validator_cls(document)
    except ValidatorDetectError:
        return [
            OpenApiError(
                path="", message="not an OpenAPI document: no `openapi` or `swagger` version"
            )
        ]
    path = SchemaPath.from_dict(document, base_uri="", handlers=_NothingFetched())
    errors: list[OpenApiError] = []
    try:
        for err in cls(path).iter_errors():
            errors.append(_error(err))
            if len(errors) >= MAX_ERRORS:
                break
    except RecursionError:
        errors.append(OpenApiError(path="", message="the document's $refs nest without end"))
    except Exception as err:  # an unresolvable pointer and the like: the document is at fault
        errors.append(_error(err))
    finally:
        # The library caches iter_errors per validator (an unbounded lru_cache keyed by the
        # instance): every document checked would stay in the worker's memory for good.
        clear = getattr(getattr(cls.iter_errors, "__wrapped__", None), "cache_clear", None)
        if clear is not None:
            clear()
    return errors


def _examine(document: dict[str, Any] | str) -> tuple[dict[str, Any], list[OpenApiError]]:
    """The document as data and its errors: bounds, references, then the validator (all of it
    on a traced worker thread)."""
    parsed = _parsed(document)
    return parsed, _reference_problems(parsed) or _validate(parsed)


def _operations(document: dict[str, Any]) -> list[str]:
    paths = document.get("paths")
    found = []
    for route, item in (paths if isinstance(paths, dict) else {}).items():
        for method in _METHODS:
            if isinstance(item, dict) and method in item:
                found.append(f"{method.upper()} {str(route)[:200]}")
    return found


@tool("openapi.validate", "1.0.0", risk="low", sends_to=sends_to_fields())
async def openapi_validate(inp: OpenApiValidateInput, ctx: ToolContext) -> OpenApiValidateOutput:
    """Check an OpenAPI document with the reference validator, within a size and time budget."""
    with masked_failures(ctx.secret_values):
        try:
            document, errors = await run_traced(_examine, inp.document, timeout_s=inp.timeout_s)
        except BudgetExceeded as err:
            raise fatal(
                f"openapi.validate stopped: {err} (timeout_s)", "OpenApiBudgetExceeded"
            ) from None
        if errors and inp.require_valid:
            listed = "; ".join(f"{e.path or '/'}: {e.message}" for e in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise fatal(f"the OpenAPI document is not valid: {listed}{more}", "OpenApiInvalid")
    operations = _operations(document)
    info = document.get("info")
    title = info.get("title") if isinstance(info, dict) else None
    version = document.get("openapi", document.get("swagger"))
    return OpenApiValidateOutput(
        valid=not errors,
        version=str(version)[:50] if version is not None else "",
        title=str(title)[:200] if title is not None else "",
        operations=operations[:MAX_OPERATIONS],
        operations_total=len(operations),
        errors=errors,
        document=document,
    )
