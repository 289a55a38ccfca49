"""Where a secret may be sent: the binding a definition's `secrets:` gives each secret, and the
rules a call holding bound secrets must keep. Pure: the definition language validates bindings
with these models, the gate's patch check and the tools at send time ask the same rules.

    secrets:
      APITOKEN: {hosts: [api.example.com, "10.0.0.5:8443"]}
      DEPLOY_KEY: {argv: [deployctl, [kubectl, --context, prod]]}
      PLAIN:                       # declared, bound to nothing: a patch may not move it

A binding is a complete list: a secret bound to hosts only is never given to a program, and one
bound to argv prefixes only is never sent over HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from ipaddress import ip_address
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# The error type of a refusal at send time, named once for the raising and the handling side.
SECRET_DESTINATION_REFUSED = "SecretDestinationRefused"
MAX_BINDING_ENTRIES = 50
MAX_PREFIX_ARGS = 32
MAX_ARG_CHARS = 1_000
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_BRACKETED = re.compile(r"^\[([0-9a-fA-F:.]+)\](?::([0-9]{1,5}))?$")


def _split_host(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, an IPv4 or IPv6 literal (`[::1]:8080`, bare `::1`) -> (host, port),
    the host lower-cased, an address in its canonical spelling."""
    bracketed = _BRACKETED.match(entry)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    else:
        host, port_text = entry, None
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65_535:
            raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    return canonical_host(host), port


def canonical_host(host: str) -> str:
    """A host as bindings compare it: an address in its canonical form, a name lower-cased
    without a trailing dot."""
    try:
        return str(ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


_HOST_CHARS = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,300}$")


def _host_entry(entry: str) -> str:
    if not _HOST_CHARS.match(entry):
        raise ValueError(
            f"{entry[:80]!r}: write a host name (letters, digits, dots and dashes; an "
            "international name in its xn-- form), an IP address, or either with :port; "
            "no scheme, path, wildcard or spaces"
        )
    host, port = _split_host(entry)
    try:
        address = ip_address(host)
    except ValueError:
        if not _NAME.match(host) or len(host) > 253:
            raise ValueError(f"{entry!r}: not a host name nor an IP address") from None
        shown = host
    else:
        shown = f"[{address}]" if address.version == 6 and port is not None else str(address)
    return shown if port is None else f"{shown}:{port}"


def _argv_prefix(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _check_prefix(prefix: list[str]) -> list[str]:
    if not prefix[0].strip():
        raise ValueError("an argv prefix starts with the program's name")
    if any("\x00" in arg for arg in prefix):
        raise ValueError("an argv prefix must not contain NUL characters")
    return prefix


HostEntry = Annotated[str, AfterValidator(_host_entry)]
ArgvPrefix = Annotated[
    list[Annotated[str, Field(max_length=MAX_ARG_CHARS)]],
    BeforeValidator(_argv_prefix),
    Field(min_length=1, max_length=MAX_PREFIX_ARGS),
    AfterValidator(_check_prefix),
]


class SecretBinding(BaseModel):
    """Where one secret may go: the hosts an HTTP request holding it may reach, and the argv
    prefixes a program given it must start with (`deployctl` is `[deployctl]`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: list[HostEntry] = Field(
        default_factory=list,
        max_length=MAX_BINDING_ENTRIES,
        description="`host` (any port) or `host:port`; exact names, no wildcards",
    )
    argv: list[ArgvPrefix] = Field(
        default_factory=list,
        max_length=MAX_BINDING_ENTRIES,
        description="programs, each a name or a list of leading arguments",
    )

    @model_validator(mode="after")
    def _somewhere(self) -> SecretBinding:
        if not self.hosts and not self.argv:
            raise ValueError(
                "a binding names hosts or argv prefixes (or both); to declare a secret without "
                "a binding, give it no value"
            )
        return self

    def allows_host(self, host: str, port: int) -> bool:
        target = canonical_host(host)
        for entry in self.hosts:
            name, wanted = _split_host(entry)
            if name == target and wanted in (None, port):
                return True
        return False

    def allows_argv(self, argv: list[str]) -> bool:
        return any(argv[: len(prefix)] == prefix for prefix in self.argv)

    def places(self) -> str:
        hosts = ", ".join(self.hosts)
        programs = ", ".join(" ".join(p) for p in self.argv)
        parts = ([f"hosts {hosts}"] if hosts else []) + (
            [f"programs started as {programs}"] if programs else []
        )
        return " and ".join(parts)


class SendRules:
    """What a call holding bound secrets may do: every bound secret it holds must allow the
    place (a call holding secrets bound to different hosts can reach only a host both name)."""

    def __init__(self, held: Mapping[str, SecretBinding]) -> None:
        self.held = dict(sorted(held.items()))

    @classmethod
    def of(cls, names: set[str], bindings: Mapping[str, SecretBinding]) -> SendRules | None:
        """The rules for a call that holds the secrets `names`; None when none of them is bound."""
        held = {n: bindings[n] for n in names if n in bindings}
        return cls(held) if held else None

    def refuse_host(self, host: str, port: int) -> str | None:
        """Why a request to host:port may not go out, or None."""
        for name, binding in self.held.items():
            if not binding.allows_host(host, port):
                return (
                    f"refused to send secret {name!r} to {host}:{port}: `secrets:` lets it go "
                    f"only to {binding.places()}"
                )
        return None

    def refuse_argv(self, argv: list[str]) -> str | None:
        """Why a program started with `argv` may not be given the call's secrets, or None."""
        for name, binding in self.held.items():
            if not binding.allows_argv(argv):
                return (
                    f"refused to give secret {name!r} to the program {argv[0]!r}: `secrets:` "
                    f"lets it go only to {binding.places()}"
                )
        return None
