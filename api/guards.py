"""What every request body goes through before a route sees it, and where CPU work runs.

Two pure ASGI middlewares: `BodyLimit` answers 413 to a body over the limit, whether it announces
its length or streams it in chunks; `StrictJson` parses JSON bodies with activities.documents'
strict parser (NaN, long numbers, deep nesting refused with their path) in a worker thread, so
the route's own parse sees only safe JSON. `Offload` runs parsing and validation in a bounded
pool of threads, so the event loop (and /healthz) keeps answering while they work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activities.documents import DocumentError, format_loc, parse_json
from api.errors import body

T = TypeVar("T")
_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}


class Offload:
    """CPU work (parsing, validation) in worker threads, at most `threads` at once; the others
    wait their turn without holding the event loop."""

    def __init__(self, threads: int) -> None:
        self.limiter = anyio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


async def get_offload(request: Request) -> Offload:
    offload: Offload = request.app.state.offload
    return offload


OffloadDep = Annotated[Offload, Depends(get_offload)]


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(body(code, message, details), status)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BodyLimit:
    """413 for a request body over `max_bytes`: at once when Content-Length says so, else as soon
    as the streamed chunks pass it (the route then sees a disconnect, and its answer is dropped)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or len(length) > 18):
            await _error(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
            return
        if length is not None and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0
        state = {"refused": False, "started": False}

        async def limited() -> Message:
            nonlocal received
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    state["refused"] = True
                    if not state["started"]:
                        await self._too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if state["refused"]:
                return  # the 413 has gone out; what the route answers to the disconnect is moot
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, limited, guarded)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(
            413, "too_large", f"the request body is larger than {self.max_bytes} bytes"
        )
        # The rest of the body is not read: the client gets its answer now and the connection
        # closes after it.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class StrictJson:
    """JSON request bodies parsed strictly (in a worker thread) before the route parses them
    again: 400 `unparseable` for what is not JSON, 422 `invalid` with each path for JSON that
    breaks a limit. Other media types pass through untouched."""

    def __init__(self, app: ASGIApp, offload: Offload) -> None:
        self.app = app
        self.offload = offload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = scope["type"] == "http" and scope.get("method") in _WITH_BODY
        if not wanted or not is_json(_header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone, or refused by BodyLimit (which answered already)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        if data:
            try:
                await self.offload.run(parse_json, data)
            except DocumentError as err:
                await _refusal(err)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _refusal(err: DocumentError) -> JSONResponse:
    if err.syntax:
        return _error(400, "unparseable", str(err), [{"path": "body", "message": str(err)}])
    details = [{"path": format_loc(loc, "body"), "message": m} for loc, m in err.issues] or [
        {"path": "body", "message": str(err)}
    ]
    return _error(422, "invalid", f"the request body is not accepted: {err}", details)
