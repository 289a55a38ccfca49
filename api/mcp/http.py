"""`/mcp`: the MCP server over streamable HTTP, inside the API, as the bearer key's principal.

Every request is authenticated with the same KeyStore as the REST API: a POST or DELETE by
`Admission` before its body is read (401 without a valid key), a GET (the server's event
stream) here; each is charged to the key's request rate. A session is bound to the principal
that opened it (another key's principal gets 404 for it, as if it did not exist), each
principal holds at most MAX_SESSIONS_PER_PRINCIPAL of them at once (429 past that), and one
idle for SESSION_IDLE_S ends. Tools reach the REST routes in process with the request's key
(api/mcp/local.py), so a key may do through MCP exactly what it may do through the API.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_log import note_principal
from api.admission import CALLER, admitted, bearer
from api.auth import Caller
from api.errors import ApiError, respond
from api.mcp.backend import Backend
from api.mcp.local import LocalBackend
from api.mcp.server import build_server
from api.state import ApiState

PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"
# A session nobody used for this long ends (the SDK's reaper); the counts below forget it too.
SESSION_IDLE_S = 30 * 60
MAX_SESSIONS_PER_PRINCIPAL = 16
# All sessions of one API process, whoever holds them (the SDK answers 503 past it).
MAX_SESSIONS = 2_000


class SessionCounts:
    """The sessions each principal opened and used within SESSION_IDLE_S, by id."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._last: dict[str, dict[str, float]] = {}

    def live(self, principal: str) -> int:
        now = self.clock()
        held = {s: t for s, t in self._last.get(principal, {}).items() if now - t < self.idle_s}
        if held:
            self._last[principal] = held
        else:
            self._last.pop(principal, None)
        return len(held)

    def used(self, principal: str, session: str) -> None:
        self._last.setdefault(principal, {})[session] = self.clock()

    def ended(self, principal: str, session: str) -> None:
        held = self._last.get(principal, {})
        held.pop(session, None)
        if not held:
            self._last.pop(principal, None)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class McpEndpoint:
    """The ASGI app served at /mcp; `app` is the API it belongs to (its routes are the tools'),
    and `run()` must be entered by the API's lifespan."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.app: ASGIApp | None = None
        self.sessions = SessionCounts(SESSION_IDLE_S)
        settings = state.settings
        self.manager = StreamableHTTPSessionManager(
            app=build_server(self.backend),
            # Requests carry a bearer key and never a cookie (the web app's is Path=/ui), so a
            # page that rebinds a name to this host cannot act as anyone: no Host allowlist.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=settings.stepgate_max_body_bytes,
            session_idle_timeout=SESSION_IDLE_S,
            max_sessions=MAX_SESSIONS,
        )

    def run(self) -> AbstractAsyncContextManager[None]:
        return self.manager.run()

    @asynccontextmanager
    async def backend(self, ctx: ServerRequestContext[Any, Any]) -> AsyncIterator[Backend]:
        """The REST routes as this request's key: the tools' way into the API."""
        request = ctx.request
        if not isinstance(request, Request) or self.app is None:
            raise RuntimeError("an /mcp request without its HTTP request")
        caller, _ = admitted(request.scope)
        if caller is None:
            raise RuntimeError("an /mcp request that was not authenticated")
        public = self.state.settings.stepgate_public_url or str(request.base_url)
        backend = LocalBackend(self.app, self.state, caller, bearer(request.scope) or "", public)
        async with backend.http:
            yield backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            caller = await self._caller(scope)
        except ApiError as err:
            await respond(err)(scope, receive, send)
            return
        # The SDK binds a session to this and refuses it to any other principal.
        scope["user"] = AuthenticatedUser(
            AccessToken(token="-", client_id="stepgate", scopes=[], subject=caller.principal)
        )
        session = _header(scope, SESSION_HEADER.encode())
        principal = caller.principal
        if session is None and scope["method"] == "POST":
            if self.sessions.live(principal) >= MAX_SESSIONS_PER_PRINCIPAL:
                full = ApiError(
                    429,
                    "too_many_sessions",
                    f"{principal!r} holds {MAX_SESSIONS_PER_PRINCIPAL} MCP sessions already; end "
                    "one (DELETE /mcp with its Mcp-Session-Id) or let one idle out",
                    headers={"Retry-After": "60"},
                )
                await respond(full)(scope, receive, send)
                return
        elif session is not None:
            self.sessions.used(principal, session[:200])

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                opened = next(
                    (
                        v.decode("latin-1")
                        for k, v in message.get("headers", [])
                        if k == b"mcp-session-id"
                    ),
                    None,
                )
                if opened is not None and session is None and status < 400:
                    self.sessions.used(principal, opened[:200])
                if session is not None and (status == 404 or scope["method"] == "DELETE"):
                    self.sessions.ended(principal, session[:200])
            await send(message)

        await self.manager.handle_request(scope, receive, watched)

    async def _caller(self, scope: Scope) -> Caller:
        """The key's caller: Admission's for a request with a body, authenticated here for a GET
        (and charged to the key's rate, as every request is)."""
        caller, _ = admitted(scope)
        if caller is not None:
            return caller
        keys, limits = self.state.keys, self.state.limits
        caller = await keys.identify(bearer(scope))
        note_principal(scope, caller.principal)
        limits.admit(caller.principal)
        scope.setdefault("state", {})[CALLER] = caller
        return caller
