"""Outbound HTTP for the tools that call other services: one send, one error classification."""

from __future__ import annotations

import asyncio
import codecs
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from activities.context import ToolContext
from activities.egress_client import TOOL_EXTENSION
from activities.errors import fatal, http_status_is_retryable, transient
from activities.masking import mask_text
from activities.tracing import SECRETS_EXTENSION

IDEMPOTENCY_HEADER = "Idempotency-Key"
# How much of an error response goes into the failure message: enough to diagnose, not a dump.
ERROR_SNIPPET_CHARS = 500


@dataclass(frozen=True)
class Reply:
    """A response whose body was read up to a bound."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    elapsed_ms: int
    encoding: str = "utf-8"

    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


def with_idempotency_key(headers: Mapping[str, str], ctx: ToolContext) -> dict[str, str]:
    """The caller's headers plus the call's idempotency key, unless the caller chose one."""
    out = dict(headers)
    if not any(k.lower() == IDEMPOTENCY_HEADER.lower() for k in out):
        out[IDEMPOTENCY_HEADER] = ctx.idempotency_key
    return out


async def send(
    ctx: ToolContext,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    max_body_bytes: int,
    params: Mapping[str, Any] | None = None,
    content: str | bytes | None = None,
    follow_redirects: bool = False,
    secrets: set[str] | None = None,
) -> Reply:
    """Send one request with a total time bound; transport trouble becomes a Temporal error."""
    hidden = ctx.secret_values if secrets is None else secrets
    started = time.monotonic()
    try:
        # httpx's timeout is per network operation; asyncio.timeout bounds the whole exchange.
        async with asyncio.timeout(timeout_s):
            request = ctx.http.build_request(
                method,
                url,
                headers=headers,
                params=params,
                content=content,
                timeout=timeout_s,
                # Lets the egress policy open the operator's LLM/notify URL for its own tool only;
                # a span never names a host that spells one of the call's secrets.
                extensions={TOOL_EXTENSION: ctx.call.tool, SECRETS_EXTENSION: frozenset(hidden)},
            )
            response = await ctx.http.send(request, stream=True, follow_redirects=follow_redirects)
            try:
                body, truncated = await _read_bounded(response, max_body_bytes)
            finally:
                await response.aclose()
    except TimeoutError:
        raise transient(
            f"{method} {mask_text(url, hidden)} took longer than {timeout_s:g}s", "HttpTimeout"
        ) from None
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as err:
        raise fatal(
            f"{method} {mask_text(url, hidden)}: {mask_text(str(err), hidden)}",
            "HttpRequestInvalid",
        ) from None
    except httpx.TimeoutException:
        raise transient(
            f"{method} {mask_text(url, hidden)} took longer than {timeout_s:g}s", "HttpTimeout"
        ) from None
    except httpx.TransportError as err:
        detail = mask_text(str(err) or type(err).__name__, hidden)
        raise transient(
            f"{method} {mask_text(url, hidden)} failed: {detail}", "HttpConnectionError"
        ) from None
    elapsed_ms = int((time.monotonic() - started) * 1000)
    encoding = _known_encoding(response.charset_encoding)
    return Reply(response.status_code, response.headers, body, truncated, elapsed_ms, encoding)


def _known_encoding(name: str | None) -> str:
    """The charset the server declared, when Python knows it; UTF-8 otherwise."""
    if name:
        try:
            codecs.lookup(name)
            return name
        except LookupError:
            pass
    return "utf-8"


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the body, so a huge response cannot exhaust the worker's memory."""
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        room = limit - len(buf)
        if len(chunk) > room:
            buf += chunk[:room]
            return bytes(buf), True
        buf += chunk
    return bytes(buf), False


def check_status(reply: Reply, expected: set[int] | None, what: str, secrets: set[str]) -> None:
    """Raise unless the status is expected (default 2xx); 5xx/408/425/429 may be retried."""
    ok = reply.status in expected if expected is not None else 200 <= reply.status < 300
    if ok:
        return
    snippet = reply.text()[:ERROR_SNIPPET_CHARS].strip()
    message = f"{what} answered HTTP {reply.status}" + (f": {snippet}" if snippet else "")
    message = mask_text(message, secrets)
    if http_status_is_retryable(reply.status):
        raise transient(message, "HttpStatusError", status=reply.status)
    raise fatal(message, "HttpStatusError", status=reply.status)
