"""Shapes shared by several routers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 403, 404, 409, 422, 429, 503)
}
