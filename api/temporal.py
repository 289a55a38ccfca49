"""The API's one Temporal client, connected at start-up or in the background if Temporal is late."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from temporalio.client import Client

from activities import tracing
from activities.config import Settings
from api.errors import unavailable
from workflows.client import TemporalUnreachable, make_client
from workflows.tracing import interceptors

log = structlog.get_logger("stepgate.api")

# Start-up waits briefly so the API serves /healthz (as 503) instead of hanging on a dead server.
STARTUP_WAIT_S = 3.0
RECONNECT_WAIT_S = 10.0
HEALTH_TIMEOUT = timedelta(seconds=2)


class TemporalLink:
    """Holds the client once it exists; requests before that get a 503 with Retry-After."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self._client = await self._connect(STARTUP_WAIT_S)
        except TemporalUnreachable as err:
            log.warning("temporal unreachable at start; retrying in the background", error=str(err))
            self._task = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while self._client is None:
            try:
                self._client = await self._connect(RECONNECT_WAIT_S)
                log.info("temporal connected", address=self._settings.temporal_address)
            except TemporalUnreachable:
                continue

    async def _connect(self, wait_s: float) -> Client:
        # With tracing on, each call to Temporal is a span under the request's (the SDK's
        # tracing interceptor), and its trace context goes into the workflow and its activities.
        traced = interceptors(tracing.provider())
        return await make_client(self._settings, wait_s=wait_s, interceptors=traced)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def client(self) -> Client:
        if self._client is None:
            raise unavailable(f"Temporal at {self._settings.temporal_address} is not reachable yet")
        return self._client

    async def healthy(self) -> bool:
        if self._client is None:
            return False
        try:
            return await self._client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        except Exception:  # any failure to answer is "not healthy", which is all /healthz reports
            return False
