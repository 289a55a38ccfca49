"""The FastAPI application: routers, error shape, CORS, and one Temporal client per process."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route

from activities import default_registry
from activities.artifacts import LocalArtifactStore
from activities.config import Settings, get_settings
from activities.memory import MemoryStore
from activities.registry import ToolRegistry
from api import docs_pages, errors, openapi
from api import tracing as api_tracing
from api.access_log import AccessLog
from api.admission import Admission, ParsePool
from api.auth import KeyStore
from api.catalog_live import CatalogWatch, LiveCatalog
from api.checker import Checker
from api.gates_open import GatesOpen, catalog_pipelines, visibility_count
from api.guards import BodyLimit, Offload, StrictJson
from api.limits import KeyLimits, RunLanes
from api.mcp.http import PATH as MCP_PATH
from api.mcp.http import McpEndpoint
from api.routes import api_router
from api.state import ApiState
from api.temporal import TemporalLink
from api.ui import router as ui_router
from api.ui.session import Sessions
from workflows.builds import package_version
from workflows.client import make_data_converter

DESCRIPTION = (
    "Start pipelines, watch them, and decide their approval gates. "
    "Send `Authorization: Bearer <key>` with a key from STEPGATE_API_KEYS_FILE."
)


def create_app(
    settings: Settings | None = None,
    registry: ToolRegistry | None = None,
    catalog: LiveCatalog | None = None,
    *,
    sighup: bool = False,
    warm: bool = False,
) -> FastAPI:
    """Build the app; keys and permissions are read now, so a bad file stops start-up early.
    The catalog is read now too, but a bad definition file is listed, never fatal; it is then
    watched for changes, and reloaded on SIGHUP when `sighup` (the process's own API only).
    With `warm` the document checkers start with the app rather than at the first check."""
    settings = settings or get_settings()
    registry = registry or default_registry()
    catalog = catalog or LiveCatalog(settings.stepgate_definitions_dir, registry)
    temporal = TemporalLink(settings)
    state = ApiState(
        settings=settings,
        registry=registry,
        catalog=catalog,
        keys=KeyStore.load(settings),
        temporal=temporal,
        codec=make_data_converter(settings).payload_codec,
        artifacts=LocalArtifactStore(settings.artifact_root),
        limits=KeyLimits.from_settings(settings),
        lanes=RunLanes(settings.stepgate_updates_per_run),
        parse=ParsePool(
            Checker(registry, settings.stepgate_parse_workers, settings.stepgate_parse_cpu_s),
            settings.stepgate_parse_threads,
            settings.stepgate_parse_per_key,
        ),
        memory=MemoryStore.from_settings(settings),
        gates_open=GatesOpen(visibility_count(temporal), catalog_pipelines(catalog)),
    )

    offload = Offload(settings.stepgate_api_cpu_threads)
    mcp = McpEndpoint(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.temporal.start()
        # Migrates under the same lock as the worker; a database that is down is tried again
        # at the first /memory request (503 until then).
        await state.memory.start()
        watch = CatalogWatch(catalog, offload.run, settings.stepgate_catalog_poll_s)
        watch.start(sighup=sighup)
        if warm:
            await state.parse.checker.warm()
        # What start-up made (modules, the app, the catalog) lives as long as the process: kept
        # out of the collector's passes, which would otherwise walk it all on every full pass.
        gc.freeze()
        try:
            # /mcp's sessions live in the MCP session manager's task group, this long.
            async with mcp.run():
                yield
        finally:
            await watch.stop()
            await state.gates_open.close()
            await state.cancels.close()
            await state.temporal.stop()
            await state.memory.close()
            state.parse.close()

    # /docs and /redoc are docs_pages' own: FastAPI's would load their scripts from a CDN.
    app = FastAPI(
        title="Stepgate",
        version=package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.stepgate = state
    app.state.offload = offload
    app.state.stepgate_ui = Sessions.from_settings(settings)
    errors.install(app)
    # Outermost last: the key is checked before any body is read, every body is bounded, then
    # JSON is checked before a route reads it.
    app.add_middleware(StrictJson)
    app.add_middleware(BodyLimit, max_bytes=settings.stepgate_max_body_bytes)
    app.add_middleware(Admission, keys=state.keys, limits=state.limits, pool=state.parse)
    origins = [settings.stepgate_ui_url, *settings.stepgate_cors_origins]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[o for o in origins if o],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        allow_credentials=True,
    )
    # Added last, so it is the outermost of these: it sees every request and its final status, and
    # times it once for both the access log and the request metrics.
    app.add_middleware(AccessLog, metrics=state.http_metrics)
    api_tracing.install(app)  # outermost of all, when tracing is on: a span around the rest
    app.include_router(api_router)
    app.include_router(ui_router)
    app.include_router(docs_pages.router)
    # MCP over streamable HTTP (api/mcp): its tools call this app's routes with the caller's key.
    app.router.routes.append(Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"]))
    mcp.app = app
    openapi.install(app)
    return app
