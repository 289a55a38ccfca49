"""The checks a document checker process runs (api.checker): strict JSON, and definitions parsed
and validated. Each returns small data or raises DocumentError, which travels back whole. In a
checker they validate against the registry it was started with; `tools` names another (the
API's own, when its registry cannot be copied to a checker and the checks run in its threads)."""

from __future__ import annotations

from typing import Any

from activities.documents import DocumentError, parse_document, parse_json
from api import checker_process
from workflows.language.validation import validate_definition

Issues = list[tuple[str, str]]


def check_json(raw: bytes, *, tools: Any = None) -> None:
    """Raises DocumentError for a body the strict parser refuses (the data stays here: the API
    decodes an accepted body again with the C decoder alone, which is quick)."""
    parse_json(raw)


# What a document that is not a mapping is told (the route answers 422 for it, as the OpenAPI
# document says: it is no definition at all).
NOT_A_DEFINITION = "a definition is a mapping with name and steps"


def read_definition(
    media_json: bool, raw: bytes, pipelines: frozenset[str], *, tools: Any = None
) -> tuple[bool, Issues]:
    """Parse a definition (JSON or YAML), then `check_definition`; DocumentError when it cannot
    be parsed or breaks a document limit."""
    if media_json:
        return check_definition(parse_json(raw), pipelines, tools=tools)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError("the body is not UTF-8 text", syntax=True) from None
    return check_definition(parse_document(text), pipelines, tools=tools)


def check_definition(
    document: Any, pipelines: frozenset[str], *, tools: Any = None
) -> tuple[bool, Issues]:
    """Validate a parsed definition: (valid, [(path, message)]). `pipelines`: the catalog's
    pipeline names (what `pipeline:` steps may name)."""
    tools = tools or checker_process.registry
    assert tools is not None, "set when the checker process started"
    if not isinstance(document, dict):
        return False, [("", NOT_A_DEFINITION)]
    report = validate_definition(document, tools, catalog=dict.fromkeys(pipelines))
    return report.valid, [(i.path, i.message) for i in report.errors]
