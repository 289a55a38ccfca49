"""`Annotated` dependency aliases the routers declare their needs with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from activities.access import LIFECYCLE, READ
from activities.config import Settings
from activities.memory import MemoryStore
from activities.registry import ToolRegistry
from api.access_log import note_principal
from api.admission import ParseSlot, admitted
from api.auth import Caller, require
from api.catalog_live import LiveCatalog
from api.state import ApiState
from workflows.language.catalog import Catalog

# auto_error=False: the 401 comes from KeyStore in the API's own error shape.
# Dependencies that only read what is in memory are `async def`: FastAPI runs a plain `def`
# one in its thread pool, a hop that cost more than a status read's own work under load.
_bearer = HTTPBearer(auto_error=False, description="an API key from STEPGATE_API_KEYS_FILE")


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.stepgate
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_catalog(state: StateDep) -> Catalog:
    # Taken once per request: a reload meanwhile swaps in a new catalog, never half of one.
    return state.catalog.current


async def get_live_catalog(state: StateDep) -> LiveCatalog:
    return state.catalog


async def get_registry(state: StateDep) -> ToolRegistry:
    return state.registry


async def get_memory(state: StateDep) -> MemoryStore:
    return state.memory


async def get_client(state: StateDep) -> Client:
    return state.temporal.client


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_caller(request: Request, state: StateDep, credentials: BearerDep) -> Caller:
    # A request that may carry a body was authenticated and charged by Admission already,
    # from its headers, before its body was read.
    caller, _ = admitted(request.scope)
    if caller is not None:
        return caller
    caller = await state.keys.identify(credentials.credentials if credentials else None)
    note_principal(request.scope, caller.principal)
    # Every other route that needs a key is rate limited here, once per request (FastAPI caches
    # the dependency); /healthz and the docs need no key and are not.
    state.limits.admit(caller.principal)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_parse(
    request: Request, state: StateDep, caller: CallerDep
) -> AsyncIterator[ParseSlot]:
    """The request's place in the parse pool (Admission's, for a request that may carry a body);
    parsing and validating go through it, never on the event loop or in the inbox's threads."""
    _, slot = admitted(request.scope)
    if slot is not None:
        yield slot
        return
    own = state.parse.slot(caller.principal)
    try:
        yield own
    finally:
        own.release()


ParseDep = Annotated[ParseSlot, Depends(get_parse)]


def needs(*permissions: str) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    """A dependency: the authenticated caller, 403 unless it holds every one of `permissions`.
    Needs that depend on the body (an inline definition, auto mode) call `require` themselves."""

    async def dependency(caller: CallerDep) -> Caller:
        require(caller, *permissions)
        return caller

    return dependency


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
LiveCatalogDep = Annotated[LiveCatalog, Depends(get_live_catalog)]
RegistryDep = Annotated[ToolRegistry, Depends(get_registry)]
ClientDep = Annotated[Client, Depends(get_client)]
MemoryDep = Annotated[MemoryStore, Depends(get_memory)]
# Routes declare the permission they need with one of these; CallerDep alone means "any key".
ReaderDep = Annotated[Caller, Depends(needs(READ))]
LifecycleDep = Annotated[Caller, Depends(needs(LIFECYCLE))]
