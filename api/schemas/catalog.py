"""Tools and pipeline definitions as the API shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import IssuePublic


class ToolPublic(BaseModel):
    name: str
    version: str
    description: str
    risk: str = Field(description="low, medium, high, or 'depends on the call'")
    local: bool = Field(description="runs as a Temporal local activity unless a step says not")
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class DefinitionSummary(BaseModel):
    name: str
    version: int = Field(description="the latest version")
    versions: list[int]
    description: str
    summary: str | None = None


class DefinitionPublic(DefinitionSummary):
    input_schema: dict[str, Any]
    steps: list[dict[str, Any]]
    definition: dict[str, Any] = Field(description="the whole definition, tools pinned")
    file: str | None = Field(None, description="the catalog file this version is read from")


class ValidationPublic(BaseModel):
    valid: bool
    errors: list[IssuePublic]


class CatalogErrorPublic(BaseModel):
    file: str = Field(description="the file, relative to the definitions folder (`.`: the folder)")
    path: str = Field(description="where in the file, like a validation error's path")
    message: str
    kept: str | None = Field(
        None, description="`name@version` the file's last good content still serves"
    )


class CatalogErrorsPublic(BaseModel):
    errors: list[CatalogErrorPublic]


class CatalogReloadPublic(BaseModel):
    added: list[str] = Field(description="versions (`name@version`) the reload added")
    changed: list[str] = Field(description="versions whose definition changed")
    removed: list[str] = Field(description="versions whose file is gone")
    errors: list[CatalogErrorPublic] = Field(description="every error the catalog lists now")
