"""The API's Prometheus metrics: requests by route template, method and status, with latency.

The access-log middleware (api/access_log.py) counts each request when its response ends,
labelled with the template of the route that served it (`/workflows/{workflow_id}`), never the
raw path: a path is the client's to choose, a template is one of the app's. A request no route
matched counts as `unmatched`, a method outside the usual few as `other`, so every label set stays
bounded. `GET /metrics` (permission `metrics`, admins by default) serves them as Prometheus text,
with the runs waiting at a gate (api/gates_open.py).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable

from starlette.types import Scope

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


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_text(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def number_text(value: float) -> str:
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
            labels = label_text((("route", route), ("method", method), ("status", status)))
            out.append(f"{REQUESTS}{{{labels}}} {number_text(sum(series[:-1]))}")
        out += [
            f"# HELP {DURATION} Seconds from a request's arrival to the end of its response.",
            f"# TYPE {DURATION} histogram",
        ]
        for (route, method, status), series in snapshot.items():
            base = (("route", route), ("method", method), ("status", status))
            running = 0.0
            for bound, count in zip((*map(number_text, BUCKETS), "+Inf"), series[:-1], strict=True):
                running += count
                labels = label_text((*base, ("le", bound)))
                out.append(f"{DURATION}_bucket{{{labels}}} {number_text(running)}")
            out.append(f"{DURATION}_sum{{{label_text(base)}}} {number_text(series[-1])}")
            out.append(f"{DURATION}_count{{{label_text(base)}}} {number_text(running)}")
        return "\n".join(out) + "\n"
