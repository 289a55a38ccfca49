"""A call's secrets go only where their bindings say (activities/bindings.py), at two moments:

- at a gate, a `modify` or `retry` patch that changes where a secret-bearing call sends (the parts
  its tool's `sends_to` names: an `http.request` URL, a `shell.run` argv, ...) is refused, naming
  the field, unless every secret the call holds is bound and the new place keeps each binding;
- at send time, while a tool runs with bound secrets, every request through `ctx.http` (each
  redirect hop too) must go to a host every binding names, checked on the host the request is
  really sent to and on its `Host` header; `shell.run` checks a program's argv the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpx

from activities.bindings import SendRules
from activities.models import CheckCall
from activities.registry import Tool
from activities.slots import held

# The rules of the call the current task runs, read by the egress transport on every request.
_SENDING: ContextVar[SendRules | None] = ContextVar("stepgate_sending", default=None)


@contextmanager
def sending(rules: SendRules | None) -> Iterator[None]:
    """Apply `rules` to every request sent from within the block (and the tasks it starts)."""
    token = _SENDING.set(rules)
    try:
        yield
    finally:
        _SENDING.reset(token)


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def request_refusal(request: httpx.Request) -> str | None:
    """Why `request` may not go out under the current call's bindings, or None."""
    rules = _SENDING.get()
    if rules is None:
        return None
    url = request.url
    port = _port(url)
    refusal = rules.refuse_host(url.raw_host.decode("ascii", "replace"), port)
    if refusal is not None:
        return refusal
    header = request.headers.get("host")
    if header is None:
        return None
    try:
        parts = urlsplit("//" + header)
        host, header_port = parts.hostname, parts.port
    except ValueError:
        host = header_port = None
    if not host:
        return "refused a Host header that names no host while the call holds a bound secret"
    return rules.refuse_host(host, header_port or port)


def patch_issues(tool: Tool | None, call: CheckCall) -> list[str]:
    """Why a patch may not move the secrets a step holds, each naming the field; [] when it may.

    `tool` None (this worker does not have it) or a tool that does not say where it sends: every
    field of the input counts as a destination."""
    if not call.slots or not isinstance(call.value, dict):
        return []
    names = held(call.value, call.slots)
    if not names:
        return []  # the patch replaced every secret slot: what is left is data
    where = tool.sends_to if tool is not None and tool.sends_to is not None else _every_field
    before = where(call.before if isinstance(call.before, dict) else {})
    after = where(call.value)
    bound = {n: b for n in names if (b := call.secrets.get(n)) is not None}
    unbound = sorted(names - set(bound))
    issues: list[str] = []
    for part in sorted(before.keys() | after.keys()):
        if before.get(part) == after.get(part):
            continue
        path = f"{call.where}.{part}" if call.where else part
        if unbound:
            shown = ", ".join(repr(n) for n in unbound)
            issues.append(
                f"{path}: the step sends secret {shown}, which `secrets:` binds to no host or "
                "program, so a patch may not change where the step sends it"
            )
            continue
        refusal = _refusal(part, after.get(part), SendRules(bound))
        if refusal is not None:
            issues.append(f"{path}: {refusal}")
    return issues


def _every_field(args: dict[str, Any]) -> dict[str, Any]:
    return dict(args)


def _refusal(part: str, value: Any, rules: SendRules) -> str | None:
    """What the bindings say of a new URL or argv; other parts are checked at send time."""
    if part == "url" and isinstance(value, str):
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL:
            return None  # the check of the tool's input says why
        if url.host:
            return rules.refuse_host(url.raw_host.decode("ascii", "replace"), _port(url))
    if part == "argv" and isinstance(value, list) and value:
        if all(isinstance(arg, str) for arg in value):
            return rules.refuse_argv(value)
    return None
