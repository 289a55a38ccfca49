"""Addresses as the outbound policy sees them: the special ranges tools may not reach by
default, and the strict parser of STEPGATE_HTTP_ALLOW entries."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

ALLOW_ENV = "STEPGATE_HTTP_ALLOW"
# Bounds on what the operator's list may hold: a longer one is a mistake, not a policy.
MAX_ALLOW_ENTRIES = 1_000
MAX_ENTRY_CHARS = 300

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# IANA's special-purpose registries, most specific first; anything else is public.
_V4_DENIED = tuple(
    (ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),  # Linux delivers 0.0.0.0 to the local host
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "reserved"),
        ("203.0.113.0/24", "reserved"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # includes the broadcast address
    )
)
_V6_DENIED = tuple(
    (ip_network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/8", "reserved"),  # includes the deprecated IPv4-compatible ::a.b.c.d
        ("64:ff9b:1::/48", "private"),  # local-use NAT64
        ("100::/64", "reserved"),
        ("2001:db8::/32", "reserved"),
        ("2001::/23", "reserved"),
        ("3fff::/20", "reserved"),
        ("5f00::/16", "reserved"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local: deprecated, still routed inside some networks
        ("ff00::/8", "multicast"),
    )
)
_V6_GLOBAL_UNICAST = ip_network("2000::/3")
_NAT64 = ip_network("64:ff9b::/96")
# Instance metadata services hand out cloud credentials; say so in the refusal.
_METADATA = {ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")}
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")


def canonical(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 host it reaches."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _embedded_v4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 host that 6to4 and NAT64 addresses are translated to on the way."""
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def denied_range(ip: IPAddress) -> str | None:
    """Why tools may not reach `ip` by default (`loopback`, `private`, ...), or None."""
    ip = canonical(ip)
    if isinstance(ip, IPv4Address):
        why = next((why for net, why in _V4_DENIED if ip in net), None)
    else:
        embedded = _embedded_v4(ip)
        if embedded is not None:
            return denied_range(embedded)
        why = next((why for net, why in _V6_DENIED if ip in net), None)
        if why is None and ip not in _V6_GLOBAL_UNICAST:
            why = "reserved"
    if why and ip in _METADATA:
        return f"{why} (cloud metadata)"
    return why


def is_this_host(ip: IPAddress) -> bool:
    """Loopback and unspecified addresses all reach a server listening on this machine."""
    return denied_range(ip) in ("loopback", "unspecified")


def normalize_host(host: str) -> str:
    """Lower case, no brackets, no trailing dot: the form names and literals are compared in."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def split_host_port(text: str, default_port: int | None) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("an opening [ without its ]")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after ]")
        port_text = rest[1:] if rest else None
    elif text.count(":") >= 2:
        host, port_text = text, None  # a bare IPv6 address or block has no port
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    else:
        host, port_text = text, None
    if port_text is None:
        return host, default_port
    if not (port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
        raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


@dataclass(frozen=True)
class AllowEntry:
    """One STEPGATE_HTTP_ALLOW entry: a name, an address or a CIDR block, maybe one port."""

    text: str
    port: int | None = None
    name: str | None = None
    network: IPNetwork | None = None
    is_block: bool = False

    def matches(self, name: str, ip: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.name is not None:
            return self.name == normalize_host(name)
        ip = canonical(ip)
        return (
            self.network is not None and ip.version == self.network.version and ip in self.network
        )

    def names_exactly(self, host: str, port: int) -> bool:
        """True for an entry that is `host:port` itself (no block, no bare host, no other port)."""
        if self.port != port or self.is_block:
            return False
        if self.name is not None:
            return self.name == normalize_host(host)
        try:
            literal = canonical(ip_address(normalize_host(host)))
        except ValueError:
            return False
        return self.network is not None and literal == canonical(self.network.network_address)


def parse_allow_entry(text: str) -> AllowEntry:
    """Parse one entry strictly; the error names the entry and what is wrong with it."""

    def bad(why: str) -> ValueError:
        return ValueError(f"{ALLOW_ENV} entry {text!r}: {why}")

    raw = text.strip()
    if not raw:
        raise bad("empty")
    if len(raw) > MAX_ENTRY_CHARS:
        raise bad(f"longer than {MAX_ENTRY_CHARS} characters")
    if "://" in raw or any(c.isspace() for c in raw):
        raise bad("give a host, host:port, cidr or cidr:port, not a URL")
    if "*" in raw:
        raise bad("wildcards are not supported; use a CIDR block such as 10.0.0.0/8")
    try:
        host, port = split_host_port(raw, None)
    except ValueError as err:
        raise bad(str(err)) from None
    if raw.startswith("[") and ":" not in host:
        raise bad("brackets are for IPv6 addresses")
    if "/" in host:
        try:
            block = ip_network(host, strict=True)
        except ValueError as err:
            hint = "; an IPv6 block with a port goes in brackets" if ":" in host else ""
            raise bad(f"not a CIDR block ({err}){hint}") from None
        return AllowEntry(raw, port, network=block, is_block=True)
    try:
        literal = ip_address(host)
    except ValueError:
        pass
    else:
        return AllowEntry(raw, port, network=ip_network(literal))
    name = normalize_host(host)
    if not name or len(name) > 253 or not _HOST_NAME.fullmatch(name):
        raise bad("not a host name, IP address or CIDR block")
    if name.rsplit(".", 1)[-1].isdigit() or name.startswith("0x"):
        raise bad("looks like an IP address but is not one in dotted or IPv6 form")
    return AllowEntry(raw, port, name=name)


def parse_allow(entries: Iterable[str]) -> tuple[AllowEntry, ...]:
    """Every entry of STEPGATE_HTTP_ALLOW, parsed; the first bad one raises ValueError."""
    items = list(entries)
    if len(items) > MAX_ALLOW_ENTRIES:
        raise ValueError(f"{ALLOW_ENV} has {len(items)} entries; at most {MAX_ALLOW_ENTRIES}")
    return tuple(parse_allow_entry(e) for e in items)


def url_host_port(url: str) -> tuple[str, int] | None:
    """The host and port an http(s) URL points at (the scheme's port when it names none)."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.scheme not in ("http", "https"):
        return None
    return normalize_host(host), port or (443 if parts.scheme == "https" else 80)


def url_entry(url: str) -> AllowEntry | None:
    """The host:port an operator-configured URL points at, as an entry; None if it has none."""
    target = url_host_port(url)
    if target is None:
        return None
    host, port = target
    try:
        return parse_allow_entry(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except ValueError:
        return None
