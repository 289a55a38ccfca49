"""What every request body goes through before a route sees it, and where CPU work runs.

Two pure ASGI middlewares, inside `api.admission.Admission` (so only a request with a valid key,
and a parse slot for a large body, gets here): `BodyLimit` answers 413 to a body over the limit,
whether it announces its length or streams it in chunks; `StrictJson` parses JSON bodies with
activities.documents' strict parser (NaN, long numbers, deep nesting, too many values refused
with their path) once, and routes of `StrictJsonRoute` take that result instead of parsing
again. A small body (a decision) is parsed right on the event loop, which costs less than a
thread hop; one up to 64 KiB (a long decision, a batch of them) in a validation thread; a
larger one is checked in a checker process (api.checker); both under the caller's parse slot. `Offload` runs the inbox's CPU work in a bounded pool of threads of its own, so the event
loop (and /healthz) keeps answering while it works.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Protocol, TypeVar

import anyio
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activities.documents import DocumentError, format_loc, parse_json
from api.admission import MEDIUM_BODY_BYTES, SMALL_BODY_BYTES, WITH_BODY, admitted, keyless
from api.checks import check_json
from api.errors import ApiError, body, respond

T = TypeVar("T")
# Where StrictJson leaves the parsed body, in the scope's `state`.
PARSED = "stepgate_json"


class Runs(Protocol):
    """Something that runs blocking work off the event loop: Offload, a ParseSlot."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...


class Offload:
    """CPU work of reads (the inbox's memos and pages) and catalog reloads in worker threads, at
    most `threads` at once; the others wait their turn without holding the event loop. Parsing
    and validating what requests send runs in api.admission.ParsePool instead."""

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
    """JSON request bodies parsed strictly before a route sees them: 400 `unparseable` for what
    is not JSON, 422 `invalid` with each path for JSON that breaks a limit. A body over
    SMALL_BODY_BYTES is checked in a validation thread, one over MEDIUM_BODY_BYTES in a checker
    process, under the slot Admission took for it. The result is left in the scope for the
    route. Other media types pass through untouched, and so do the routes that take no JSON and
    no key (the web app's forms, Slack's interactions): a body nobody has vouched for is not
    parsed on the event loop, and those routes refuse it by its type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wanted = scope["type"] == "http" and scope.get("method") in WITH_BODY
        wanted = wanted and not keyless(scope)
        if not wanted or not is_json(_header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        _, slot = admitted(scope)
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
                if len(data) <= SMALL_BODY_BYTES or slot is None:
                    parsed = parse_json(data)
                elif len(data) <= MEDIUM_BODY_BYTES:
                    parsed = await slot.run(parse_json, data)
                else:
                    # The strict walk is Python work for the checker; the C decoder alone
                    # then reads the accepted body here (1 MiB: about 25 ms, in a thread).
                    await slot.check(check_json, data)
                    parsed = await slot.run(_decode, data)
            except DocumentError as err:
                await _refusal(err)(scope, receive, send)
                return
            except ApiError as err:
                await respond(err)(scope, receive, send)
                return
            scope.setdefault("state", {})[PARSED] = parsed
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": data, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _decode(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


_UNPARSED = object()


def parsed_json(scope: Scope) -> Any:
    """The body StrictJson parsed, or _UNPARSED (not JSON, empty, or not through StrictJson)."""
    return (scope.get("state") or {}).get(PARSED, _UNPARSED)


def was_parsed(value: Any) -> bool:
    return value is not _UNPARSED


class _ParsedRequest(Request):
    """A request whose JSON body StrictJson has parsed: FastAPI takes it from there."""

    async def json(self) -> Any:
        parsed = parsed_json(self.scope)
        return parsed if was_parsed(parsed) else await super().json()


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is not parsed a second time, on the event loop, by FastAPI (1 MiB
    of JSON is 25 ms of the loop's time); pydantic then checks the parsed value there."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parsed_once(request: Request) -> Response:
            return await handler(_ParsedRequest(request.scope, request.receive))

        return parsed_once


def _refusal(err: DocumentError) -> JSONResponse:
    if err.syntax:
        return _error(400, "unparseable", str(err), [{"path": "body", "message": str(err)}])
    details = [{"path": format_loc(loc, "body"), "message": m} for loc, m in err.issues] or [
        {"path": "body", "message": str(err)}
    ]
    return _error(422, "invalid", f"the request body is not accepted: {err}", details)
