"""The OpenAPI document: FastAPI's, plus the definition language's own schema (`Definition` and
the specs it is made of) under components, for the bodies that carry an inline definition."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from workflows.language.definition import Definition

DEFINITION_REF = "#/components/schemas/Definition"


def definition_schemas() -> dict[str, dict[str, Any]]:
    """`Definition` and every spec it refers to, each a component of the document."""
    schema = Definition.model_json_schema(ref_template="#/components/schemas/{model}")
    parts: dict[str, dict[str, Any]] = schema.pop("$defs", {})
    return {**parts, "Definition": schema}


def install(app: FastAPI) -> None:
    """Build the document once, as FastAPI does, with the definition schemas added."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(definition_schemas())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
