"""The pipeline catalog, and validation of a definition before anyone commits it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from activities.access import CATALOG_RELOAD
from activities.documents import DocumentError, format_loc
from api.auth import Caller
from api.checks import NOT_A_DEFINITION, check_definition, read_definition
from api.deps import CatalogDep, LiveCatalogDep, ParseDep, ReaderDep, needs
from api.errors import ApiError
from api.guards import OffloadDep, is_json, parsed_json, was_parsed
from api.schemas.catalog import (
    CatalogErrorPublic,
    CatalogErrorsPublic,
    CatalogReloadPublic,
    DefinitionPublic,
    DefinitionSummary,
    ValidationPublic,
)
from api.schemas.common import ERRORS, IssuePublic
from workflows.language.catalog import Catalog, CatalogIssue
from workflows.language.definition import Definition
from workflows.language.limits import MAX_NAME_CHARS

router = APIRouter(prefix="/definitions", tags=["definitions"], responses=ERRORS)
ReloaderDep = Annotated[Caller, Depends(needs(CATALOG_RELOAD))]

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
JSON_TYPE = "application/json"
# A definition as a document: a mapping, whatever it holds (the answer lists what is wrong in
# it); in YAML it is the document's top level, as in JSON.
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_TYPE: {"schema": _ANY_OBJECT},
            "application/yaml": {"schema": _ANY_OBJECT},
            "text/yaml": {"schema": _ANY_OBJECT},
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


# Declared before `/{name}`, which would otherwise take `errors` for a pipeline's name (the
# catalog refuses that name).
@router.get("/errors", response_model=CatalogErrorsPublic)
async def list_errors(_: ReaderDep, catalog: CatalogDep) -> CatalogErrorsPublic:
    """Catalog files refused at the last load (file, path, message) and the version each still
    serves from its last good content."""
    return CatalogErrorsPublic(errors=_errors(catalog.errors))


@router.post("/reload", response_model=CatalogReloadPublic)
async def reload_catalog(
    caller: ReloaderDep, live: LiveCatalogDep, offload: OffloadDep
) -> CatalogReloadPublic:
    """Read the definitions folder now (as SIGHUP and the folder watch do); answers the versions
    added, changed and removed, and every error the catalog lists. Needs `catalog_reload`."""
    change = await offload.run(live.reload, f"POST /definitions/reload by {caller.principal}")
    return CatalogReloadPublic(
        added=change.added,
        changed=change.changed,
        removed=change.removed,
        errors=_errors(change.errors),
    )


def _errors(issues: tuple[CatalogIssue, ...]) -> list[CatalogErrorPublic]:
    return [
        CatalogErrorPublic(file=i.file, path=i.path, message=i.message, kept=i.kept) for i in issues
    ]


@router.get("/{name}", response_model=DefinitionPublic)
async def get_definition(
    _: ReaderDep,
    catalog: CatalogDep,
    name: Annotated[str, Path(max_length=MAX_NAME_CHARS)],
    version: int | None = None,
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
        file=catalog.files.get((d.name, d.version)),
    )


@router.post("/validate", response_model=ValidationPublic, openapi_extra=_BODY_DOC)
async def validate(
    _: ReaderDep,
    request: Request,
    catalog: CatalogDep,
    parse: ParseDep,
) -> ValidationPublic:
    """Check a YAML or JSON definition against the tools and the catalog; every error at once."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    if not is_json(media) and media not in YAML_TYPES:
        raise ApiError(415, "unsupported_media_type", f"send {JSON_TYPE} or application/yaml")
    # The body's size is bounded by the API's BodyLimit, a JSON one parsed already (StrictJson);
    # parsing and validating it are CPU work for a checker process (api.checker).
    document = parsed_json(request.scope)
    pipelines = frozenset(catalog.versions)
    if was_parsed(document):
        valid, errors = await parse.check(check_definition, document, pipelines)
    else:
        raw = await request.body()
        try:
            valid, errors = await parse.check(read_definition, is_json(media), raw, pipelines)
        except DocumentError as err:
            raise _refused(err) from None
    if errors == [("", NOT_A_DEFINITION)]:
        # Not a definition at all, as the OpenAPI document says: the request is refused.
        raise ApiError(
            422, "invalid", NOT_A_DEFINITION, [{"path": "", "message": NOT_A_DEFINITION}]
        )
    return ValidationPublic(
        valid=valid, errors=[IssuePublic(path=path, message=message) for path, message in errors]
    )


def _refused(err: DocumentError) -> ApiError:
    """400 for what cannot be parsed at all, 422 for a document that breaks a limit."""
    if err.syntax:
        return ApiError(400, "unparseable", str(err), [{"path": "", "message": str(err)}])
    details = [{"path": format_loc(loc), "message": m} for loc, m in err.issues]
    return ApiError(422, "invalid", str(err), details or [{"path": "", "message": str(err)}])
