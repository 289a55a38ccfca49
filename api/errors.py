"""One JSON error shape for every failure: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.service import RPCError, RPCStatusCode

from api.access_log import loggable
from workflows.client import TemporalUnreachable
from workflows.language.validation import Issue, loc_to_path

log = structlog.get_logger("stepgate.api")

# Seconds a client should wait before trying again when Temporal cannot be reached.
RETRY_AFTER_S = 5
_UNAVAILABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


class ApiError(Exception):
    """A failure the client should see as is: status, stable code, message, details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def invalid(issues: list[Issue], message: str = "the request is not valid") -> ApiError:
    """422 listing every problem with its path."""
    details = [{"path": i.path, "message": i.message} for i in issues]
    return ApiError(422, "invalid", message, details)


def unavailable(message: str, code: str = "temporal_unavailable") -> ApiError:
    return ApiError(503, code, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def timed_out(err: RPCError) -> bool:
    """The call's own rpc_timeout ran out (the SDK reports its client-side deadline as CANCELLED)."""
    return err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)


def no_worker(workflow_id: str, within: timedelta) -> ApiError:
    """The run exists but no worker answered in time: its workers are down or overloaded."""
    return unavailable(
        f"no worker answered for run {workflow_id!r} within {within.total_seconds():g}s",
        "worker_unavailable",
    )


def run_closed(err: RPCError) -> bool:
    """Temporal's answer to a request that reached a run after it closed, or was aborted by the
    run closing (a decision sent in the workflow task that completed it)."""
    return err.status == RPCStatusCode.NOT_FOUND and (
        "already completed" in err.message or "closing workflow" in err.message
    )


def from_rpc(err: RPCError, *, not_found: str = "not found") -> ApiError:
    """The HTTP view of a Temporal RPC failure."""
    if err.status in _UNAVAILABLE:
        return unavailable(f"Temporal is unavailable: {err.message}")
    if run_closed(err):
        return ApiError(409, "run_closed", "the run has already closed")
    if err.status == RPCStatusCode.NOT_FOUND:
        return ApiError(404, "not_found", not_found)
    if err.status == RPCStatusCode.INVALID_ARGUMENT:
        return ApiError(422, "invalid", err.message)
    if err.status == RPCStatusCode.PERMISSION_DENIED:
        return ApiError(403, "forbidden", err.message)
    return ApiError(502, "temporal_error", f"Temporal refused the request: {err.message}")


def body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def respond(err: ApiError) -> JSONResponse:
    return JSONResponse(body(err.code, err.message, err.details), err.status, headers=err.headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # registered for ApiError only
    return respond(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for it only
    issues = [
        Issue(loc_to_path(list(e.get("loc", ()))), str(e.get("msg", "invalid")))
        for e in exc.errors()
    ]
    return respond(invalid(issues))


# Methods a path may be asked whether it serves (OPTIONS is answered for every path).
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method the request's path serves, OPTIONS included (Starlette's 405 names only the
    first route that matched: `/workflows` said POST, not GET). A fixed path the OpenAPI
    document names is that path's resource, even where a template matches it too
    (`/definitions/validate` is not `/definitions/{name}`, whose names exclude it)."""
    documented = request.app.openapi().get("paths", {}).get(request.url.path)
    if documented:
        served = [m for m in _METHODS if m.lower() in documented]
    else:
        routes = request.app.router.routes
        served = [
            m
            for m in _METHODS
            if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)
        ]
    return ", ".join([*served, "OPTIONS"])


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # registered for it only
    codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
        if request.method == "OPTIONS":  # what a path offers: its methods, no body
            return Response(status_code=204, headers=headers)
    return JSONResponse(
        body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
        exc.status_code,
        headers=headers,
    )


async def _rpc_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)  # registered for it only
    return respond(from_rpc(exc))


async def _unreachable(_: Request, exc: Exception) -> JSONResponse:
    return respond(unavailable(str(exc)))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The client gets no internals; the log keeps the trace for the operator.
    log.error("unhandled error", path=loggable(request.url.path), exc_info=exc)
    return JSONResponse(body("internal", "internal error; see the API log"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RPCError, _rpc_error)
    app.add_exception_handler(TemporalUnreachable, _unreachable)
    app.add_exception_handler(Exception, _unexpected)
