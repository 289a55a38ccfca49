"""The HTTP client tools share: each connection resolves its host once, is checked against the
egress policy and goes to the very address that was checked (no DNS-rebinding gap).

TLS and the Host header stay on the name (httpcore hands the name to TLS as SNI and checks the
certificate against it); only the TCP connect uses the checked address.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from ipaddress import ip_address

import anyio
import httpcore
import httpx
import structlog

from activities import tracing
from activities.addresses import AllowEntry, IPAddress
from activities.bindings import SECRET_DESTINATION_REFUSED
from activities.config import Settings
from activities.destinations import request_refusal
from activities.egress import (
    EGRESS_REFUSED,
    EgressPolicy,
    Endpoint,
    policy_from_settings,
    tool_grants,
)
from activities.errors import fatal

# Request extension naming the tool that sends it (set by activities/tools/_http.py `send`), so
# the LLM endpoint and notify URL the operator configured open only for their own tool.
TOOL_EXTENSION = "stepgate.tool"
# How long a Temporal endpoint's resolved addresses are trusted before they are looked up again.
ENDPOINT_TTL_S = 30.0
# httpx's own defaults, kept for the shared client.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

Resolve = Callable[[str, int], Awaitable[list[IPAddress]]]

log = structlog.get_logger("stepgate.egress")


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ip_address(sockaddr[0])
            if ip not in found:
                found.append(ip)
    return found


class _Resolver:
    """Resolves connection targets, and Temporal's endpoints with a short cache."""

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve
        self._endpoints: dict[Endpoint, tuple[float, frozenset[IPAddress]]] = {}

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ip_address(host)]  # a literal needs no lookup
        except ValueError:
            return await self._resolve(host, port)

    async def endpoint_addresses(
        self, endpoints: Iterable[Endpoint]
    ) -> dict[Endpoint, frozenset[IPAddress]]:
        out: dict[Endpoint, frozenset[IPAddress]] = {}
        now = time.monotonic()
        for endpoint in endpoints:
            cached = self._endpoints.get(endpoint)
            if cached is None or cached[0] < now:
                try:
                    ips = frozenset(await self.addresses(endpoint.host, endpoint.port))
                except OSError:
                    ips = frozenset()  # unresolvable now: it is still recognised by its name
                cached = (now + ENDPOINT_TTL_S, ips)
                self._endpoints[endpoint] = cached
            out[endpoint] = cached[1]
        return out


class EgressBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy checked between resolving and connecting."""

    def __init__(self, policy: EgressPolicy, resolver: _Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface, honoured below)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                ips = await self._resolver.addresses(host, port)
                known = await self._resolver.endpoint_addresses(self._policy.endpoints_on(port))
        except TimeoutError:
            raise httpcore.ConnectTimeout(
                f"resolving the host took longer than {timeout}s"
            ) from None
        except OSError as err:
            # These name no host: a host is data that can carry a secret in a form masking does
            # not know (IDNA); the tool's own message names the (masked) URL.
            raise httpcore.ConnectError(f"cannot resolve the host: {err}") from None
        refused = self._policy.refusal(host, port, ips, known)
        if refused:
            log.warning("outbound connection refused", reason=refused)
            raise fatal(refused, EGRESS_REFUSED)
        last: Exception = httpcore.ConnectError("the host has no address")
        for ip in ips:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                last = err
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface; refused at once)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise fatal("refused a unix socket: tools reach only TCP addresses", EGRESS_REFUSED)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PolicedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose every connection goes through the backend.

    httpx's __init__ is skipped on purpose: it would build a pool that connects unchecked. Should
    httpx rename its `_pool`, requests fail (AttributeError) instead of going out unchecked.
    """

    def __init__(self, backend: EgressBackend, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=backend,
        )


class EgressTransport(httpx.AsyncBaseTransport):
    """One pool per policy, so a connection one tool may open is never reused by another."""

    def __init__(
        self,
        policy: EgressPolicy,
        grants: Mapping[str, tuple[AllowEntry, ...]],
        *,
        resolve: Resolve = system_resolve,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify)
        resolver = _Resolver(resolve)

        def pool(p: EgressPolicy) -> _PolicedTransport:
            return _PolicedTransport(EgressBackend(p, resolver), ssl_context)

        self._default = pool(policy)
        self._by_tool = {
            tool: pool(EgressPolicy(policy.allow, policy.endpoints, granted=entries))
            for tool, entries in grants.items()
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Each request, so each redirect hop, on the host it really goes to, in a span of its own
        # (this transport connects itself: no library instruments it).
        with tracing.client_span(request) as span:
            refused = request_refusal(request)
            if refused is not None:
                log.warning("request holding a bound secret refused", reason=refused)
                raise fatal(refused, SECRET_DESTINATION_REFUSED)
            tool = request.extensions.get(TOOL_EXTENSION)
            transport = (
                self._by_tool.get(tool, self._default) if isinstance(tool, str) else self._default
            )
            response = await transport.handle_async_request(request)
        return response if span is None else tracing.traced(response, span)

    async def aclose(self) -> None:
        for transport in (self._default, *self._by_tool.values()):
            await transport.aclose()


def make_http_client(
    settings: Settings, *, resolve: Resolve = system_resolve, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """The client every tool gets as `ctx.http`. A bad STEPGATE_HTTP_ALLOW raises ValueError.

    A proxy from HTTP(S)_PROXY would connect on the tool's behalf to an address this process
    never checked: httpx skips them when given a transport, and `trust_env=False` keeps it so.
    """
    transport = EgressTransport(
        policy_from_settings(settings), tool_grants(settings), resolve=resolve, verify=verify
    )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
