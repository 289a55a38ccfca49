"""The API's Prometheus metrics (`metrics` permission, admins by default): a scraper sends its
key as a bearer token, like any client (docs/operations.md, Metrics)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from activities.access import METRICS
from api.auth import Caller
from api.deps import StateDep, needs
from api.metrics import CONTENT_TYPE
from api.schemas.common import ErrorPublic

router = APIRouter(tags=["health"])
# The errors are JSON in the API's error shape; the metrics themselves are text.
_JSON_ERROR = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    **{code: {"model": ErrorPublic, **_JSON_ERROR} for code in (401, 403, 429)},
}
MetricsDep = Annotated[Caller, Depends(needs(METRICS))]


@router.get("/metrics", response_class=PlainTextResponse, responses=RESPONSES)
async def metrics(_: MetricsDep, state: StateDep) -> PlainTextResponse:
    """Requests by route template, method and status with their latency, and the runs waiting
    at a gate by pipeline and priority, as Prometheus text."""
    text = state.http_metrics.render() + await state.gates_open.render()
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
