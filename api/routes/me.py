"""Who the request's key is: its principal, roles and permissions (any key may ask)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from activities.access import PERMISSIONS
from api.deps import CallerDep
from api.schemas.common import ERRORS

router = APIRouter(tags=["keys"], responses=ERRORS)


class MePublic(BaseModel):
    principal: str
    roles: list[str]
    permissions: list[str] = Field(description="the union of the roles' permissions")


@router.get("/me", response_model=MePublic)
async def me(caller: CallerDep) -> MePublic:
    """The key's principal, its roles and what they allow: what a client (`stepgate mcp`, a
    script) offers its user follows from it; the API checks every request anyway."""
    return MePublic(
        principal=caller.principal,
        roles=list(caller.roles),
        permissions=[p for p in PERMISSIONS if caller.can(p)],
    )
