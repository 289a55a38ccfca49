"""Who may do what: permission names, the roles-to-permissions mapping and the API keys file.

The API authenticates requests with it; the worker uses it to check, when a schedule fires, that
the schedule's owner still holds what the start needs (the `stepgate.authorize` activity).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from temporalio import activity

from activities.config import Settings
from activities.documents import parse_document
from activities.models import AUTHORIZE_ACTIVITY, AuthorizeCall, AuthorizeResult
from activities.watched import RELOAD_CHECK_S as RELOAD_CHECK_S  # tests and callers read it here
from activities.watched import WatchedFile

log = structlog.get_logger("stepgate.access")

READ = "read"
START = "start"
START_GOVERNED = "start_governed"
START_INLINE = "start_inline"
START_AUTO = "start_auto"
LIFECYCLE = "lifecycle"
SCHEDULE = "schedule"
SCHEDULE_ANY = "schedule_any"
CATALOG_RELOAD = "catalog_reload"
MEMORY_DELETE = "memory_delete"
VERSIONS = "versions"  # list the worker builds, make one current
GRANTS_REVOKE = "grants_revoke"  # revoke any standing grant (its granters may revoke their own)
METRICS = "metrics"  # read the API's Prometheus metrics (GET /metrics)
# Offered the MCP `decide` tool: an AI client holding the key may decide gates. Without it a gate
# is offered to the person through a link to its page in the web app (docs/mcp.md).
DECIDE_VIA_MCP = "decide_via_mcp"
PERMISSIONS: tuple[str, ...] = (
    READ,
    START,
    START_GOVERNED,
    START_INLINE,
    START_AUTO,
    LIFECYCLE,
    SCHEDULE,
    SCHEDULE_ANY,
    CATALOG_RELOAD,
    MEMORY_DELETE,
    VERSIONS,
    GRANTS_REVOKE,
    DECIDE_VIA_MCP,
    METRICS,
)
# DESIGN.md "Who may do what"; other roles (ops, peer, ...) hold no permission, they decide gates.
DEFAULT_ROLES: Mapping[str, frozenset[str]] = {
    "viewer": frozenset({READ}),
    "operator": frozenset({READ, START, START_GOVERNED, LIFECYCLE, SCHEDULE}),
    "admin": frozenset(PERMISSIONS),
}

KEYS_ENV = "STEPGATE_API_KEYS_FILE"
PERMISSIONS_ENV = "STEPGATE_PERMISSIONS_FILE"
# Both files are small; a bigger one is a mistake, not something to parse.
MAX_FILE_BYTES = 1_048_576
_NAME = r"^[^\s:]+$"
# What a principal's name may be (a key's `principal`): the inbox's `requester=` filter takes it.
PRINCIPAL_NAME_PATTERN = _NAME


def read_document(path: Path, env: str) -> Any:
    """A bounded YAML/JSON file as data; ValueError naming the setting, never the contents."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ValueError(f"{env}={path} cannot be read: {err.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"{env}={path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return parse_document(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{env}={path}: {err}") from None


def _where(err: ValidationError) -> str:
    # Say where, never echo the values: in the keys file they are keys.
    return ", ".join(".".join(map(str, e["loc"])) or "(top)" for e in err.errors())


class RoleMap:
    """Roles to permissions: the defaults, with the roles a permissions file names replaced."""

    def __init__(self, overrides: Mapping[str, Iterable[str]] | None = None) -> None:
        self._roles = {**DEFAULT_ROLES, **{r: frozenset(p) for r, p in (overrides or {}).items()}}
        for role, granted in self._roles.items():
            unknown = sorted(granted - set(PERMISSIONS))
            if unknown:
                raise ValueError(
                    f"role {role!r} names unknown permission(s) {', '.join(unknown)}; "
                    f"known: {', '.join(PERMISSIONS)}"
                )

    @classmethod
    def load(cls, path: Path | None) -> RoleMap:
        if path is None:
            return cls()
        data = read_document(path, PERMISSIONS_ENV)
        try:
            mapping = TypeAdapter(dict[str, list[str]]).validate_python(data or {})
        except ValidationError as err:
            raise ValueError(
                f"{PERMISSIONS_ENV}={path}: expected {{role: [permission, ...]}}; "
                f"wrong at {_where(err)}"
            ) from None
        try:
            return cls(mapping)
        except ValueError as err:
            raise ValueError(f"{PERMISSIONS_ENV}={path}: {err}") from None

    def of(self, roles: Iterable[str]) -> frozenset[str]:
        return frozenset().union(*(self._roles.get(r, frozenset()) for r in roles))


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=8)
    principal: str = Field(min_length=1, max_length=200, pattern=_NAME)
    roles: list[str] = Field(default_factory=list)
    expires: datetime | None = Field(None, description="ISO datetime; naive means UTC")


@dataclass(frozen=True)
class Identity:
    """What one key grants: its principal, roles, permissions and expiry."""

    principal: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    expires: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Keys:
    """One reading of the keys file; keys are kept only as sha256 digests."""

    def __init__(self, entries: Iterable[KeyEntry], roles: RoleMap) -> None:
        self._entries = [
            (
                _digest(e.key),
                Identity(e.principal, tuple(e.roles), roles.of(e.roles), _aware(e.expires)),
            )
            for e in entries
        ]

    def by_token(self, token: str) -> Identity | None:
        digest = _digest(token)
        found: Identity | None = None
        # Every entry is compared, so the time taken does not tell which key came close.
        for known, identity in self._entries:
            if hmac.compare_digest(known, digest):
                found = identity
        return found

    def by_principal(self, principal: str) -> list[Identity]:
        return [i for _, i in self._entries if i.principal == principal]


def parse_keys(data: Any, roles: RoleMap, where: str) -> Keys:
    try:
        entries = TypeAdapter(list[KeyEntry]).validate_python(data or [])
    except ValidationError as err:
        raise ValueError(f"{KEYS_ENV}={where}: invalid entries at {_where(err)}") from None
    return Keys(entries, roles)


class KeyFile(WatchedFile[Keys]):
    """The keys file, read again when it changes (activities/watched.py), so keys are added,
    removed and expired without a restart."""

    def __init__(
        self,
        path: Path | None,
        roles: RoleMap,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            path,
            lambda p: parse_keys(read_document(p, KEYS_ENV), roles, str(p)),
            what="API keys file",
            kept="keys",
            clock=clock,
        )


def authorize(keys: Keys | None, call: AuthorizeCall, now: datetime) -> AuthorizeResult:
    """Whether `call.principal` holds every permission in `call.needs` now, through any of its
    keys that has not expired."""
    if keys is None:
        return AuthorizeResult(
            allowed=False,
            reason=f"the worker has no {KEYS_ENV}; set it to the API's keys file so runs started "
            "on someone's behalf can be checked",
        )
    unknown = sorted(set(call.needs) - set(PERMISSIONS))
    if unknown:
        return AuthorizeResult(allowed=False, reason=f"unknown permission(s) {', '.join(unknown)}")
    identities = keys.by_principal(call.principal)
    if not identities:
        return AuthorizeResult(
            allowed=False, reason=f"principal {call.principal!r} has no API key any more"
        )
    current = [i for i in identities if not i.expired(now)]
    if not current:
        return AuthorizeResult(
            allowed=False, reason=f"every API key of principal {call.principal!r} has expired"
        )
    held = frozenset().union(*(i.permissions for i in current))
    missing = [p for p in call.needs if p not in held]
    if missing:
        return AuthorizeResult(
            allowed=False,
            reason=f"principal {call.principal!r} lacks permission(s) {', '.join(missing)}",
        )
    return AuthorizeResult(allowed=True)


class AccessActivities:
    """Built once per worker with its settings; `authorize` is registered as an activity."""

    def __init__(self, settings: Settings, *, keys: KeyFile | None = None) -> None:
        self.keys = keys or KeyFile(
            settings.stepgate_api_keys_file, RoleMap.load(settings.stepgate_permissions_file)
        )

    @activity.defn(name=AUTHORIZE_ACTIVITY)
    async def authorize(self, call: AuthorizeCall) -> AuthorizeResult:
        """Whether a run started on someone's behalf may still start (see `authorize`)."""
        # Reading the file (when it changed) is blocking I/O: keep it off the worker's loop.
        keys = await asyncio.to_thread(self.keys.current)
        return authorize(keys, call, datetime.now(UTC))
