"""The pipeline catalog, and validation of a definition before anyone commits it."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from activities.documents import parse_document
from api.catalog import Catalog
from api.deps import CatalogDep, ReaderDep, RegistryDep
from api.errors import ApiError
from api.schemas.catalog import DefinitionPublic, DefinitionSummary, ValidationPublic
from api.schemas.common import ERRORS, IssuePublic
from workflows.definition import Definition
from workflows.validation import validate_definition

router = APIRouter(prefix="/definitions", tags=["definitions"], responses=ERRORS)

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
JSON_TYPE = "application/json"
MAX_BODY = 1_048_576
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_TYPE: {"schema": _ANY_OBJECT},
            "application/yaml": {"schema": {"type": "string"}},
            "text/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _summary(catalog: Catalog, latest: Definition) -> DefinitionSummary:
    return DefinitionSummary(
        name=latest.name,
        version=latest.version,
        versions=sorted(catalog.versions[latest.name]),
        description=latest.description,
        summary=latest.summary,
    )


@router.get("", response_model=list[DefinitionSummary])
async def list_definitions(_: ReaderDep, catalog: CatalogDep) -> list[DefinitionSummary]:
    """The latest version of every catalog pipeline, with the versions available."""
    return [_summary(catalog, d) for d in catalog.latest()]


@router.get("/{name}", response_model=DefinitionPublic)
async def get_definition(
    _: ReaderDep, catalog: CatalogDep, name: str, version: int | None = None
) -> DefinitionPublic:
    """One pipeline (latest, or `?version=`), with its input JSON Schema."""
    try:
        d = catalog.get(f"{name}@{version}" if version is not None else name)
    except KeyError as err:
        raise ApiError(404, "not_found", str(err.args[0])) from None
    return DefinitionPublic(
        **_summary(catalog, d).model_dump(exclude={"version"}),
        version=d.version,
        input_schema=d.input,
        steps=[s.model_dump(by_alias=True, exclude_none=True) for s in d.steps],
        definition=d.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


@router.post("/validate", response_model=ValidationPublic, openapi_extra=_BODY_DOC)
async def validate(
    _: ReaderDep, request: Request, catalog: CatalogDep, registry: RegistryDep
) -> ValidationPublic:
    """Check a YAML or JSON definition against the tools and the catalog; every error at once."""
    data = _parse(request.headers.get("content-type", ""), await request.body())
    report = validate_definition(data, registry, catalog=catalog.versions)
    return ValidationPublic(
        valid=report.valid,
        errors=[IssuePublic(path=i.path, message=i.message) for i in report.errors],
    )


def _parse(content_type: str, raw: bytes) -> Any:
    media = content_type.split(";")[0].strip().lower()
    if media not in (JSON_TYPE, *YAML_TYPES):
        raise ApiError(415, "unsupported_media_type", f"send {JSON_TYPE} or application/yaml")
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"a definition is at most {MAX_BODY} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "unparseable", "the body is not UTF-8 text") from None
    if media == JSON_TYPE:
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ApiError(
                422,
                "unparseable",
                f"not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
                [{"path": "", "message": err.msg, "line": err.lineno, "column": err.colno}],
            ) from None
    try:
        return parse_document(text)
    except ValueError as err:
        raise ApiError(422, "unparseable", str(err), [{"path": "", "message": str(err)}]) from None
