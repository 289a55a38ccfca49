"""One structured access-log line and one observation in the request metrics per request: who,
what, the status and how long it took, timed once.

A pure ASGI middleware, so a streamed response (the SSE route) passes through unbuffered; the line
is written and the request counted when the response ends. The log never carries headers or the
query string (keys and secrets travel there), only the principal the key belonged to, and a signed
link's token is cut from its path (`/ui/links/…`): the token is what lets its holder decide. The
metrics label a request with its route's template, never its path (api/metrics.py).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import HttpMetrics, route_template

log = structlog.get_logger("stepgate.api.access")

# Where the auth dependency leaves the principal for the middleware: a mutable holder in the
# ASGI scope survives any copy of the scope made on the way to the route.
SCOPE_KEY = "stepgate.access"
# A path is the client's to choose; the log keeps a bounded, printable version of it.
MAX_PATH_CHARS = 300
# A signed link's path (api/ui/views_link.py): its token never reaches the log.
LINK_PREFIX = "/ui/links/"


def note_principal(scope: Scope, principal: str) -> None:
    """Record who the request authenticated as, for its access-log line."""
    holder: dict[str, Any] | None = scope.get(SCOPE_KEY)
    if holder is not None:
        holder["principal"] = principal


def printable(text: str, limit: int = MAX_PATH_CHARS) -> str:
    """`text` cut to `limit` characters with control characters escaped, so a crafted path
    cannot forge log lines."""
    cut = text[:limit]
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return clean + ("…" if len(text) > limit else "")


def loggable(path: str) -> str:
    """The path as the log keeps it: printable, bounded, a link's token replaced by `…`."""
    if path.startswith(LINK_PREFIX):
        token, slash, rest = path[len(LINK_PREFIX) :].partition("/")
        path = LINK_PREFIX + ("…" if token else "") + slash + rest
    return printable(path)


class AccessLog:
    """Logs `request` with principal (or `-`), method, path, status and latency_ms, and records
    the same status and latency in `metrics` by route template (a failure before the response
    started: 500)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        holder: dict[str, Any] = {"principal": None}
        scope[SCOPE_KEY] = holder
        # An exception before the response started is answered 500 by the outer error handler.
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(route_template(scope), scope["method"], status, elapsed)
            log.info(
                "request",
                principal=holder["principal"] or "-",
                method=scope["method"],
                path=loggable(scope["path"]),
                status=status,
                latency_ms=round(elapsed * 1000, 1),
            )
