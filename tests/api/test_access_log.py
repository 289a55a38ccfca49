"""The access log: one line per request, attributing it, never carrying a key or a query."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import structlog

from api.access_log import loggable, printable
from tests.api.conftest import StartRun
from tests.api.helpers import sse_events, wait_state
from tests.support import prom
from tests.support.util import eventually

Auth = Callable[[str], dict[str, str]]


def requests(logs: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("event") == "request" and e.get("path") == path]


async def test_access_log_attributes_requests_without_secrets(
    http: httpx.AsyncClient, as_: Auth, keys: dict[str, str]
) -> None:
    """Each request logs principal (or `-`), method, path, status and latency; the key, the
    Authorization header and the query string never appear."""
    with structlog.testing.capture_logs() as logs:
        ok = await http.get("/tools", params={"token": "query-secret-42"}, headers=as_("olga"))
        bad = await http.get("/tools", headers={"Authorization": "Bearer wrong-key-0123456789"})
        forbidden = await http.post("/workflows/x/cancel", headers=as_("vic"))
    assert (ok.status_code, bad.status_code, forbidden.status_code) == (200, 401, 403)
    first, second = requests(logs, "/tools")
    assert {k: first[k] for k in ("principal", "method", "status")} == {
        "principal": "olga",
        "method": "GET",
        "status": 200,
    }
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0
    assert (second["principal"], second["status"]) == ("-", 401)
    (third,) = requests(logs, "/workflows/x/cancel")
    assert (third["principal"], third["method"], third["status"]) == ("vic", "POST", 403)
    text = repr(logs)
    for secret in (keys["olga"], keys["vic"], "wrong-key-0123456789", "query-secret-42", "Bearer"):
        assert secret not in text


async def streams_counted(http: httpx.AsyncClient, as_: Auth) -> float:
    """How many event streams the API's request metrics have counted so far."""
    r = await http.get("/metrics", headers=as_("root"))
    route = {"route": "/workflows/{workflow_id}/events", "status": "200"}
    return prom.value(prom.parse(r.text), "stepgate_http_requests_total", **route)


async def test_access_log_lets_the_event_stream_through_unbuffered(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """The SSE route still streams (an event arrives while the run waits, long before the
    response ends), and once the stream closes its line is written and it is counted in the
    request metrics, by the same middleware, once."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    path = f"/workflows/{workflow_id}/events"
    counted = await streams_counted(http, as_)
    with structlog.testing.capture_logs() as logs:
        async with http.stream("GET", path, headers=as_("vic")) as r:
            first = await anext(aiter(sse_events(r)))
            assert first["data"]["state"] == "waiting"
            assert requests(logs, path) == []  # the response has not ended yet
            assert await streams_counted(http, as_) == counted
        (line,) = await eventually(
            lambda: requests(logs, path), ok=lambda found: len(found) == 1, what="stream logged"
        )
    assert (line["principal"], line["status"]) == ("vic", 200)
    assert await streams_counted(http, as_) == counted + 1


def test_printable_path_bounded_and_escaped() -> None:
    """A crafted path cannot add lines to the log or make it grow without bound."""
    assert printable("/a\nb\x1b") == "/a\\x0ab\\x1b"
    assert printable("/" + "x" * 1_000, limit=10) == "/xxxxxxxxx…"


def test_a_links_token_never_reaches_the_log() -> None:
    """A signed link's path is logged without its token, whatever follows it."""
    assert loggable("/ui/links/tok.en-secret") == "/ui/links/…"
    assert loggable("/ui/links/tok.en-secret/modify") == "/ui/links/…/modify"
    assert loggable("/ui/links/") == "/ui/links/"
    assert loggable("/ui/inbox") == "/ui/inbox"
    assert "secret" not in loggable("/ui/links/" + "secret" * 100)
