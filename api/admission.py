"""Who a request is and what it may cost, settled from its headers before its body is read.

`Admission` (pure ASGI) authenticates every request that may carry a body from its
`Authorization` header alone and charges the key's request rate, before a byte of the body is
read: a request without a valid key costs a key lookup and a 401, never a parse. The caller is
left in the scope, where `deps.get_caller` finds it.

`ParsePool` is where what requests send is parsed and validated, apart from the event loop
(decisions and status reads need no thread at all) and from the threads the inbox reads in:
documents are checked in processes of their own (api.checker: they share no interpreter lock
with the loop, and each check has a CPU budget), and what routes build from a checked body
(a run's input, a schedule, a governed plan) is validated in threads of their own. Each
principal may hold `per_key` places in it at once; one more is a 429 `parse_busy` with
Retry-After, so one key cannot fill it. A request takes its place (a `ParseSlot`) at its first
parse and keeps it until its response has been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access_log import note_principal
from api.auth import Caller, KeyStore
from api.checker import Checker, CheckerUnavailable, OverBudget
from api.errors import ApiError, respond, unavailable
from api.limits import KeyLimits

T = TypeVar("T")
WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where Admission leaves what it settled, in the scope's `state` (Starlette's request.state).
CALLER = "stepgate_caller"
SLOT = "stepgate_parse_slot"
# A parse takes well under a second (docs/api.md, "Limits"): come back after one.
PARSE_RETRY_AFTER_S = 1
# A body up to this size costs little to read and check, right on the event loop (a decision is
# a few hundred bytes); a larger one needs a parse slot before it is read.
SMALL_BODY_BYTES = 4_096
# A JSON body up to this size (a decision with a long comment or patch, a batch of decisions) is
# checked in a validation thread, 20 ms at most, rather than queued behind a checker's documents.
MEDIUM_BODY_BYTES = 65_536
# How long a refused request's small body may take to arrive before the answer goes anyway.
DRAIN_S = 2.0


class ParsePool:
    """Checker processes and validation threads, `per_key` places per principal."""

    def __init__(self, checker: Checker, threads: int, per_key: int) -> None:
        self.checker = checker
        self.threads = ThreadPoolExecutor(threads, "stepgate-parse")
        self.per_key = per_key
        self._held: dict[str, int] = {}

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a validation thread; waits in arrival order while all are busy."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.threads, functools.partial(fn, *args))

    async def check(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` (one of api.checks) in a checker process: 422 past the CPU budget, 503
        when no checker can run it. In a validation thread, without a budget, when the registry
        cannot be copied to a checker."""
        if not self.checker.usable:
            return await self.run(functools.partial(fn, tools=self.checker.registry), *args)
        try:
            return await self.checker.run(fn, *args)
        except OverBudget:
            raise ApiError(
                422,
                "over_budget",
                f"checking the request took more than {self.checker.budget_s:g} s of CPU; send "
                "a smaller document",
            ) from None
        except CheckerUnavailable as err:
            raise unavailable(str(err), "checker_unavailable") from None

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        self.checker.close()

    def slot(self, principal: str) -> ParseSlot:
        return ParseSlot(self, principal)

    def held(self, principal: str) -> int:
        return self._held.get(principal, 0)

    def _take(self, principal: str) -> None:
        held = self.held(principal)
        if held >= self.per_key:
            raise ApiError(
                429,
                "parse_busy",
                f"{principal!r} already has {held} request(s) being parsed or validated (at "
                f"most {self.per_key} at once); send this one again when one has finished",
                headers={"Retry-After": str(PARSE_RETRY_AFTER_S)},
            )
        self._held[principal] = held + 1

    def _give(self, principal: str) -> None:
        held = self.held(principal) - 1
        if held > 0:
            self._held[principal] = held
        else:
            self._held.pop(principal, None)


@dataclass
class ParseSlot:
    """One request's place in the pool: taken at its first `run` (429 when the principal holds
    all of theirs), kept for the request's other parses, given back by `release`."""

    pool: ParsePool
    principal: str
    taken: bool = False

    def take(self) -> None:
        if not self.taken:
            self.pool._take(self.principal)
            self.taken = True

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        self.take()
        return await self.pool.run(fn, *args)

    async def check(self, fn: Callable[..., T], *args: Any) -> T:
        self.take()
        return await self.pool.check(fn, *args)

    def release(self) -> None:
        if self.taken:
            self.taken = False
            self.pool._give(self.principal)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def bearer(scope: Scope) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, read as fastapi's HTTPBearer does."""
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, credentials = get_authorization_scheme_param(value)
    return credentials if scheme.lower() == "bearer" and credentials else None


def small_body(scope: Scope) -> bool:
    """The request announces a body of at most SMALL_BODY_BYTES, or none at all (a body streamed
    in chunks has no length to announce: it counts as large)."""
    length = _header(scope, b"content-length")
    if length is None:
        return _header(scope, b"transfer-encoding") is None
    return not length.isdigit() or int(length) <= SMALL_BODY_BYTES  # BodyLimit refuses non-numbers


def web_app(scope: Scope) -> bool:
    """The web app's pages (/ui) sign in with a session cookie, checked by the pages
    themselves (api/ui/web.py), and are charged to the principal there."""
    path = str(scope.get("path", ""))
    return path == "/ui" or path.startswith("/ui/")


# Slack's interactions carry no bearer key: Slack's request signature is their authentication,
# checked by the route itself (api/routes/slack.py) on a body it bounds.
SLACK_INTERACTIONS = "/integrations/slack/interactions"


def keyless(scope: Scope) -> bool:
    """Routes that authenticate otherwise than with a bearer key: the web app (a session cookie
    or a signed link) and Slack's interactions (a request signature)."""
    return web_app(scope) or scope.get("path") == SLACK_INTERACTIONS


def announced_small(scope: Scope) -> bool:
    """The request announces a Content-Length of at most SMALL_BODY_BYTES."""
    length = _header(scope, b"content-length")
    return length is not None and length.isdigit() and int(length) <= SMALL_BODY_BYTES


async def drain(receive: Receive) -> None:
    """Read what is left of a small body and drop it, DRAIN_S at most."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return


def admitted(scope: Scope) -> tuple[Caller | None, ParseSlot | None]:
    """What Admission settled for this request (nothing for one it does not look at)."""
    state = scope.get("state") or {}
    return state.get(CALLER), state.get(SLOT)


class Admission:
    """401 and 429 from the headers alone for every request that may carry a body; the caller
    and a parse slot in the scope for the rest, the slot given back when the response is done.
    A large body takes the slot now, before it is read: past the principal's places, 429."""

    def __init__(self, app: ASGIApp, keys: KeyStore, limits: KeyLimits, pool: ParsePool) -> None:
        self.app = app
        self.keys = keys
        self.limits = limits
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY or keyless(scope):
            await self.app(scope, receive, send)
            return
        slot: ParseSlot | None = None
        try:
            caller = await self.keys.identify(bearer(scope))
            note_principal(scope, caller.principal)
            self.limits.admit(caller.principal)
            slot = self.pool.slot(caller.principal)
            if not small_body(scope):
                slot.take()
        except ApiError as err:
            response = respond(err)
            if announced_small(scope):
                # A few KiB at most: read and dropped first, so the answer is never lost to a
                # reset (closing a socket with unread bytes makes the kernel send RST, which may
                # reach the client before it has read the answer), and the connection is kept.
                await drain(receive)
            else:
                # A large body is never read: the client has its answer now, and the connection
                # closes after it.
                response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[CALLER], state[SLOT] = caller, slot
        try:
            await self.app(scope, receive, send)
        finally:
            slot.release()
