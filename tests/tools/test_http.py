"""http.request against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply, Seen, json_reply


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_request_returns_json_when_server_answers_json(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A JSON answer comes back parsed, with status, headers and the query the server saw."""
    server.route("GET", "/items", lambda seen: json_reply({"items": [1, 2], "q": seen.query}))
    call = make_call(
        "http.request", {"url": server.url("/items"), "query": {"tag": ["a", "b"], "n": 3}}
    )
    result = await acts.execute(call)
    out = result.output
    assert out["status"] == 200
    assert out["json"] == {"items": [1, 2], "q": {"tag": ["a", "b"], "n": ["3"]}}
    assert out["text"] is None and out["truncated"] is False
    assert out["headers"]["content-type"] == "application/json"
    assert server.seen[0].headers["idempotency-key"] == call.idempotency_key


async def test_request_keeps_caller_idempotency_key_when_given(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A caller's own Idempotency-Key (any case) is sent instead of the call's key."""
    server.route("POST", "/pay", lambda seen: Reply(201, b"created"))
    args = {"method": "POST", "url": server.url("/pay"), "headers": {"idempotency-key": "mine"}}
    result = await acts.execute(make_call("http.request", args))
    assert result.output["status"] == 201 and result.output["text"] == "created"
    assert server.seen[0].headers["idempotency-key"] == "mine"


async def test_request_sends_json_body_when_json_given(
    acts: ToolActivities, server: LocalServer
) -> None:
    """`json` is sent as an application/json body."""
    server.route("POST", "/echo", lambda seen: json_reply(seen.json()))
    args = {"method": "POST", "url": server.url("/echo"), "json": {"a": [1, None]}}
    result = await acts.execute(make_call("http.request", args))
    assert result.output["json"] == {"a": [1, None]}
    assert server.seen[0].headers["content-type"] == "application/json"


async def test_request_truncates_body_when_over_limit(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A body over max_body_bytes is cut there, flagged, and returned as text even if JSON."""
    big = {"data": "x" * 5000}
    server.route("GET", "/big", lambda seen: json_reply(big))
    args = {"url": server.url("/big"), "max_body_bytes": 100}
    result = await acts.execute(make_call("http.request", args))
    assert result.output["truncated"] is True
    assert result.output["json"] is None and len(result.output["text"]) == 100


async def test_request_fails_fatally_when_status_is_4xx(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A 404 is a non-retryable failure whose message shows the status and the body."""
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", {"url": server.url("/missing")}))
    assert err.value.non_retryable is True
    assert "HTTP 404" in err.value.message and "no such route" in err.value.message


@pytest.mark.parametrize("status", [500, 503, 429, 408])
async def test_request_fails_transiently_when_status_is_retryable(
    acts: ToolActivities, server: LocalServer, status: int
) -> None:
    """5xx, 429 and 408 are retryable failures."""
    server.route("GET", "/flaky", lambda seen: Reply(status, b"busy"))
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", {"url": server.url("/flaky")}))
    assert err.value.non_retryable is False
    assert f"HTTP {status}" in err.value.message


async def test_request_succeeds_when_status_is_expected(
    acts: ToolActivities, server: LocalServer
) -> None:
    """A status listed in expected_status is a success even if it is not 2xx."""
    args = {"url": server.url("/missing"), "expected_status": [404]}
    result = await acts.execute(make_call("http.request", args))
    assert result.output["status"] == 404


async def test_request_fails_transiently_when_connection_refused(acts: ToolActivities) -> None:
    """Nobody listening is a retryable failure."""
    url = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", {"url": url}))
    assert err.value.non_retryable is False
    assert err.value.type == "HttpConnectionError"


async def test_request_fails_transiently_when_server_is_too_slow(
    acts: ToolActivities, server: LocalServer
) -> None:
    """An answer slower than timeout_s is a retryable timeout."""

    def stall(seen: Seen) -> Reply:
        server.release.wait(30)
        return Reply(200)

    server.route("GET", "/slow", stall)
    args = {"url": server.url("/slow"), "timeout_s": 0.3}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", args))
    assert err.value.non_retryable is False and err.value.type == "HttpTimeout"


async def test_request_rejects_input_when_json_and_body_given(acts: ToolActivities) -> None:
    """Both `json` and `body` is a non-retryable validation error that says so."""
    args = {"url": "http://127.0.0.1:9/", "json": {}, "body": "x"}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", args))
    assert err.value.non_retryable is True and err.value.type == "InvalidToolInput"
    assert "either `json` or `body`" in err.value.message


async def test_request_rejects_input_when_field_is_misspelled(acts: ToolActivities) -> None:
    """An unknown field is refused and named, not silently ignored."""
    args = {"url": "http://127.0.0.1:9/", "timeout": 3}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", args))
    assert err.value.non_retryable is True
    assert "timeout: Extra inputs are not permitted" in err.value.message


async def test_request_resolves_and_masks_secret_when_referenced(
    acts: ToolActivities, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`${secret.NAME}` reaches the server resolved, and an echo of it is masked in the result."""
    monkeypatch.setenv("STEPGATE_SECRET_API_TOKEN", "s3cr3t-token-value")
    server.route("GET", "/me", lambda seen: json_reply({"echo": seen.headers["x-token"]}))
    args = {"url": server.url("/me"), "headers": {"X-Token": "${secret.API_TOKEN}"}}
    result = await acts.execute(make_call("http.request", args))
    assert server.seen[0].headers["x-token"] == "s3cr3t-token-value"
    assert "s3cr3t-token-value" not in result.preview
    assert "s3cr3t-token-value" not in str(result.output)
    assert result.output["json"] == {"echo": "***"}


async def test_request_fails_fatally_when_secret_is_missing(acts: ToolActivities) -> None:
    """A reference to a secret the worker does not have is a non-retryable error naming it."""
    args = {"url": "http://127.0.0.1:9/", "headers": {"X-Token": "${secret.NOPE}"}}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("http.request", args))
    assert err.value.non_retryable is True and "STEPGATE_SECRET_NOPE" in err.value.message
