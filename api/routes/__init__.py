"""Every router, collected in one place."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import (
    approvals,
    codec,
    definitions,
    governed,
    grants,
    health,
    me,
    memory,
    metrics,
    pages,
    schedules,
    slack,
    tools,
    versions,
    workflows,
)

api_router = APIRouter()
for module in (
    health,
    metrics,
    me,
    tools,
    definitions,
    workflows,
    pages,
    grants,
    governed,
    memory,
    approvals,
    schedules,
    versions,
    codec,
    slack,
):
    api_router.include_router(module.router)
