"""Tools and pipeline definitions as the API shows them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import IssuePublic


class ToolPublic(BaseModel):
    name: str
    version: str
    description: str
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


class ValidationPublic(BaseModel):
    valid: bool
    errors: list[IssuePublic]
