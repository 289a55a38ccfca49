"""Liveness of the API and its link to Temporal; open to probes without a key."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import StateDep
from api.errors import unavailable
from api.schemas.common import ErrorPublic, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": ErrorPublic}})
async def healthz(state: StateDep) -> Health:
    """200 when Temporal answers its health check; 503 with Retry-After otherwise."""
    if not await state.temporal.healthy():
        raise unavailable(f"Temporal at {state.settings.temporal_address} is not answering")
    return Health(temporal="ok")
