"""Shapes shared by several routers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Header, Path
from pydantic import BaseModel, Field, WithJsonSchema

from workflows.language.definition import PIPELINE_NAME_PATTERN
from workflows.language.limits import MAX_GATE_ID_CHARS, MAX_NAME_CHARS

# A catalog pipeline as a request names it: `deploy` (the newest version) or `deploy@2`.
CatalogRef = Annotated[
    str,
    Field(
        max_length=MAX_NAME_CHARS, pattern=PIPELINE_NAME_PATTERN.removesuffix("$") + "(@[0-9]*)?$"
    ),
]
# An inline definition (or a governed run's plan) as the OpenAPI document states it: the
# language's model, whose schema api/openapi.py adds to the components. What JSON Schema cannot
# state (tools and their inputs, references, conditions, the step graph) is checked after, each
# problem named in a 422; the route reads the mapping as it came and validates it itself.
InlineDefinition = Annotated[
    dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/Definition"})
]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorPublic(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorBody


class IssuePublic(BaseModel):
    path: str
    message: str


class Health(BaseModel):
    temporal: str


class Accepted(BaseModel):
    workflow_id: str
    accepted: bool = True
    action: str


# Every status a route may answer besides its own: 400 unparseable JSON, 413 body too large,
# 415 wrong media type, 429 rate limited, 503 Temporal or its workers unavailable.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)
}

# Ids in paths. Temporal itself refuses workflow and schedule ids over 1,000 characters (its
# default limit.maxIDLength) with an error that is not the client's to read; ids from the API are
# shorter still, but runs started by schedules or the CLI may have longer ones than 200.
MAX_PATH_ID_CHARS = 1_000
WorkflowIdPath = Annotated[str, Path(min_length=1, max_length=MAX_PATH_ID_CHARS)]
ScheduleIdPath = Annotated[str, Path(min_length=1, max_length=MAX_PATH_ID_CHARS)]
GateIdPath = Annotated[str, Path(min_length=1, max_length=MAX_GATE_ID_CHARS)]
# How a decision sent to the REST route came: `mcp` from `stepgate mcp`, so the audit says so.
ChannelHeader = Annotated[
    Literal["api", "mcp"],
    Header(
        alias="Stepgate-Channel",
        description="`mcp` from an MCP server that decides through this route (`stepgate mcp`), "
        "so the audit says where the decision came from; a label the client declares, never a "
        "permission",
    ),
]
