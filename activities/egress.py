"""Where tools may connect: special address ranges are denied unless STEPGATE_HTTP_ALLOW names
them, and Temporal's own endpoints only by an entry naming exactly their host:port.

Pure rules over addresses that were already resolved; `activities.egress_client` resolves,
calls `EgressPolicy.refusal` and connects to the address it checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING

from activities.addresses import (
    ALLOW_ENV,
    AllowEntry,
    IPAddress,
    canonical,
    denied_range,
    is_this_host,
    normalize_host,
    parse_allow,
    parse_allow_entry,
    split_host_port,
    url_entry,
    url_host_port,
)

if TYPE_CHECKING:
    from activities.config import Settings

# The ApplicationError type of a refused connection; raised once, matched by name elsewhere.
EGRESS_REFUSED = "EgressRefused"
TEMPORAL_GRPC_DEFAULT_PORT = 7233
TEMPORAL_HTTP_DEFAULT_PORT = 7243


@dataclass(frozen=True)
class Endpoint:
    """A Temporal endpoint the worker knows of; tools may not reach it."""

    what: str
    host: str
    port: int


def temporal_endpoints(settings: Settings) -> tuple[Endpoint, ...]:
    """The frontend, its HTTP API and the Web UI, as the worker's settings name them."""
    found: list[Endpoint] = []
    for what, value, default in (
        (
            "the Temporal frontend (TEMPORAL_ADDRESS)",
            settings.temporal_address,
            TEMPORAL_GRPC_DEFAULT_PORT,
        ),
        (
            "the Temporal HTTP API (STEPGATE_TEMPORAL_HTTP_ADDRESS)",
            settings.temporal_http_address,
            TEMPORAL_HTTP_DEFAULT_PORT,
        ),
    ):
        try:
            host, port = split_host_port(value, default)
        except ValueError as err:
            raise ValueError(f"{what}: {value!r}: {err}") from None
        found.append(Endpoint(what, normalize_host(host), port or default))
    if settings.stepgate_ui_url:
        ui = url_host_port(settings.stepgate_ui_url)
        if ui is None:
            raise ValueError(f"STEPGATE_UI_URL {settings.stepgate_ui_url!r} is not an http(s) URL")
        found.append(Endpoint("the Temporal Web UI (STEPGATE_UI_URL)", *ui))
    return tuple(found)


def _where(name: str, ip: IPAddress, port: int) -> str:
    """`127.0.0.1:80`, `[::1]:80`, with the name the tool used when it was not that address."""
    shown = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    if canonical(ip) != ip:
        shown += f" (IPv4-mapped {canonical(ip)})"
    try:
        literal = ip_address(normalize_host(name)) == ip
    except ValueError:
        literal = False
    return shown if literal else f"{shown} ({name})"


@dataclass(frozen=True)
class EgressPolicy:
    """The operator's allow list, Temporal's endpoints and one tool's own configured targets."""

    allow: tuple[AllowEntry, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    # Where the operator pointed one tool (llm.chat, notify.webhook): allowed for it alone.
    granted: tuple[AllowEntry, ...] = ()

    def endpoints_on(self, port: int) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.port == port)

    def refusal(
        self,
        name: str,
        port: int,
        ips: Iterable[IPAddress],
        endpoint_ips: Mapping[Endpoint, frozenset[IPAddress]],
    ) -> str | None:
        """Why a connection to `name`:`port` at any of `ips` is refused, or None to allow it."""
        for ip in ips:
            endpoint = self._endpoint_at(name, ip, port, endpoint_ips)
            if endpoint is not None and not any(
                e.names_exactly(endpoint.host, endpoint.port) for e in self.allow
            ):
                exact = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
                return (
                    f"refused {_where(name, ip, port)}: is {endpoint.what}; only the exact entry "
                    f"{exact}:{endpoint.port} in {ALLOW_ENV} opens it"
                )
            # An endpoint opened by its exact entry is still a loopback or private address.
            why = denied_range(ip)
            if why and not any(e.matches(name, ip, port) for e in self.allow + self.granted):
                return f"refused {_where(name, ip, port)}: {why} (allow it with {ALLOW_ENV})"
        return None

    def _endpoint_at(
        self,
        name: str,
        ip: IPAddress,
        port: int,
        endpoint_ips: Mapping[Endpoint, frozenset[IPAddress]],
    ) -> Endpoint | None:
        for endpoint in self.endpoints_on(port):
            known = endpoint_ips.get(endpoint, frozenset())
            if normalize_host(name) == endpoint.host or canonical(ip) in known:
                return endpoint
            # A server on this machine answers on every loopback address, 0.0.0.0 and ::1 alike.
            if is_this_host(ip) and any(is_this_host(k) for k in known):
                return endpoint
        return None


def policy_from_settings(settings: Settings) -> EgressPolicy:
    """The worker-wide policy; `tool_grants` adds what one tool's own settings point at."""
    return EgressPolicy(
        allow=parse_allow(settings.stepgate_http_allow), endpoints=temporal_endpoints(settings)
    )


def tool_grants(settings: Settings) -> dict[str, tuple[AllowEntry, ...]]:
    """The LLM endpoint for llm.chat, the notify URL for notify.webhook, the Slack Web API for
    notify.slack and the SMTP server for notify.email: the operator chose them, so those tools
    may reach them even on a private address; other tools may not."""
    grants: dict[str, tuple[AllowEntry, ...]] = {}
    for tool, url in (
        ("llm.chat", settings.stepgate_llm_base_url),
        ("notify.webhook", settings.stepgate_notify_url),
        ("notify.slack", settings.stepgate_slack_api_url),
    ):
        entry = url_entry(url) if url else None
        if entry is not None:
            grants[tool] = (entry,)
    smtp = settings.stepgate_smtp_host
    if smtp:
        smtp = f"[{smtp}]" if ":" in smtp else smtp
        try:
            grants["notify.email"] = (parse_allow_entry(f"{smtp}:{settings.stepgate_smtp_port}"),)
        except ValueError:
            pass  # not a host name: the connection is refused where it is made, naming it
    return grants
