"""The API's Prometheus metrics: requests by route template, method and status, with latency.

A pure ASGI middleware counts each request when its response ends, labelled with the template of
the route that served it (`/workflows/{workflow_id}`), never the raw path: a path is the client's
to choose, a template is one of the app's. A request no route matched counts as `unmatched`, a
method outside the usual few as `other`, so every label set stays bounded. `GET /metrics`
(permission `metrics`, admins by default) serves them as Prometheus text.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = "stepgate_http_requests_total"
DURATION = "stepgate_http_request_duration_seconds"
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def route_template(scope: Scope) -> str:
    """The template of the route that served the request, else `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class HttpMetrics:
    """Counts and latency histograms by (route, method, status), kept in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (route, method, status) -> [count per bucket..., count over the last, sum]
        self._series: dict[tuple[str, str, str], list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method if method in METHODS else "other", str(status))
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(BUCKETS) + 2))
            series[bisect.bisect_left(BUCKETS, seconds)] += 1
            series[-1] += seconds

    def render(self) -> str:
        """Prometheus text exposition (format 0.0.4) of every series."""
        with self._lock:
            snapshot = {k: list(v) for k, v in sorted(self._series.items())}
        out = [
            f"# HELP {REQUESTS} API requests by route template, method and status.",
            f"# TYPE {REQUESTS} counter",
        ]
        for (route, method, status), series in snapshot.items():
            labels = _labels((("route", route), ("method", method), ("status", status)))
            out.append(f"{REQUESTS}{{{labels}}} {_number(sum(series[:-1]))}")
        out += [
            f"# HELP {DURATION} Seconds from a request's arrival to the end of its response.",
            f"# TYPE {DURATION} histogram",
        ]
        for (route, method, status), series in snapshot.items():
            base = (("route", route), ("method", method), ("status", status))
            running = 0.0
            for bound, count in zip((*map(_number, BUCKETS), "+Inf"), series[:-1], strict=True):
                running += count
                labels = _labels((*base, ("le", bound)))
                out.append(f"{DURATION}_bucket{{{labels}}} {_number(running)}")
            out.append(f"{DURATION}_sum{{{_labels(base)}}} {_number(series[-1])}")
            out.append(f"{DURATION}_count{{{_labels(base)}}} {_number(running)}")
        return "\n".join(out) + "\n"


class RequestMetrics:
    """Records each HTTP request in `metrics` once its response has ended (or failed: 500)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
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
            self.metrics.observe(route_template(scope), scope["method"], status, elapsed)
