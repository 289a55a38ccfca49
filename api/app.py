"""The FastAPI application: routers, error shape, CORS, and one Temporal client per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from activities import default_registry
from activities.config import Settings, get_settings
from activities.registry import ToolRegistry
from api import errors
from api.auth import KeyStore
from api.catalog import Catalog
from api.limits import KeyLimits, RunLanes
from api.routes import api_router
from api.state import ApiState
from api.temporal import TemporalLink
from workflows.client import make_data_converter

DESCRIPTION = (
    "Start pipelines, watch them, and decide their approval gates. "
    "Send `Authorization: Bearer <key>` with a key from STEPGATE_API_KEYS_FILE."
)


def create_app(
    settings: Settings | None = None,
    registry: ToolRegistry | None = None,
    catalog: Catalog | None = None,
) -> FastAPI:
    """Build the app; the catalog and keys are read now, so a bad file stops start-up early."""
    settings = settings or get_settings()
    registry = registry or default_registry()
    catalog = catalog or Catalog.load(settings.stepgate_definitions_dir, registry)
    state = ApiState(
        settings=settings,
        registry=registry,
        catalog=catalog,
        keys=KeyStore.load(settings.stepgate_api_keys_file),
        temporal=TemporalLink(settings),
        codec=make_data_converter(settings).payload_codec,
        limits=KeyLimits.from_settings(settings),
        lanes=RunLanes(settings.stepgate_updates_per_run),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.temporal.start()
        try:
            yield
        finally:
            await state.temporal.stop()

    app = FastAPI(title="Stepgate", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.stepgate = state
    errors.install(app)
    origins = [settings.stepgate_ui_url, *settings.stepgate_cors_origins]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[o for o in origins if o],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        allow_credentials=True,
    )
    app.include_router(api_router)
    return app
