"""The tools this deployment knows, with their input and output JSON Schemas."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReaderDep, RegistryDep
from api.schemas.catalog import ToolPublic
from api.schemas.common import ERRORS

router = APIRouter(prefix="/tools", tags=["tools"], responses=ERRORS)


@router.get("", response_model=list[ToolPublic])
async def list_tools(_: ReaderDep, registry: RegistryDep) -> list[ToolPublic]:
    """Every version of every tool, newest first per tool."""
    return [ToolPublic.model_validate(t) for t in registry.listing()]
