"""The HTTP side of access: a request's bearer key to a Caller, and 401/403 in the API's shape.

Permission names, the roles mapping and the keys file live in `activities.access` (the worker
checks scheduled runs with the same rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from activities.access import KEYS_ENV, KeyFile, RoleMap
from activities.config import Settings
from api.errors import ApiError
from workflows.rules.votes import eligible, principals_of

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stepgate"'}


def _invalid_token(description: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": (
            f'Bearer realm="stepgate", error="invalid_token", error_description="{description}"'
        )
    }


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request and what its key allows."""

    principal: str
    roles: tuple[str, ...]
    permissions: frozenset[str] = frozenset()

    @property
    def principals(self) -> list[str]:
        """How gates name this caller (the rules' own function: one answer everywhere)."""
        return principals_of(self.principal, self.roles)

    def may_decide(self, approvers: list[str], voted: list[str]) -> bool:
        """A gate with these approvers names the caller, who has not voted on it yet."""
        return eligible(approvers, self.principal, self.roles) and self.principal not in voted

    def can(self, permission: str) -> bool:
        return permission in self.permissions


class KeyStore:
    """The configured keys as the API sees them; the file is reread when it changes."""

    def __init__(self, keys: KeyFile) -> None:
        self.keys = keys

    @classmethod
    def load(cls, settings: Settings) -> KeyStore:
        """Read both files now, so a bad one stops start-up with a message naming it."""
        roles = RoleMap.load(settings.stepgate_permissions_file)
        return cls(KeyFile(settings.stepgate_api_keys_file, roles))

    def due(self) -> bool:
        """Whether authenticating now would look at the keys file (blocking): see KeyFile.due."""
        return self.keys.due()

    async def identify(self, token: str | None) -> Caller:
        """`authenticate` from the event loop: at most once a second the keys file is due a
        look (a stat, a reread if it changed), and that request authenticates in a thread;
        every other one checks the keys in memory, without a thread hop."""
        if self.due():
            return await anyio.to_thread.run_sync(self.authenticate, token)
        return self.authenticate(token, look=False)

    async def deciding(self, principal: str) -> Caller | None:
        """The principal as a signed link or a Slack user decides: no key sent, so the roles are
        the union of those of its keys that are unexpired now, and no permission at all (deciding
        a gate needs none: the gate names who may). None when it has no such key: a removed or
        expired key stops its holder's links and buttons too."""
        if self.due():
            keys = await anyio.to_thread.run_sync(self.keys.current)
        else:
            keys = self.keys.current(look=False)
        if keys is None:
            return None
        now = datetime.now(UTC)
        current = [i for i in keys.by_principal(principal) if not i.expired(now)]
        if not current:
            return None
        roles = dict.fromkeys(r for i in current for r in i.roles)
        return Caller(principal, tuple(roles))

    def authenticate(self, token: str | None, *, look: bool = True) -> Caller:
        """The caller a key belongs to; 401 without a key, with an unknown or expired one.
        Blocking when the keys file is due a look (`due()`): run it off the event loop
        then. With `look` false it never touches the file and may run on the loop."""
        keys = self.keys.current(look=look)
        if keys is None:
            raise ApiError(
                401,
                "unauthorized",
                f"the API has no keys configured; set {KEYS_ENV} "
                "to a file of {key, principal, roles}",
                headers=_CHALLENGE,
            )
        if not token:
            raise ApiError(
                401, "unauthorized", "send `Authorization: Bearer <key>`", headers=_CHALLENGE
            )
        identity = keys.by_token(token)
        if identity is None:
            raise ApiError(
                401, "unauthorized", "unknown API key", headers=_invalid_token("unknown key")
            )
        if identity.expired(datetime.now(UTC)):
            raise ApiError(
                401, "expired", "the API key has expired", headers=_invalid_token("expired")
            )
        return Caller(identity.principal, identity.roles, identity.permissions)


def require(caller: Caller, *permissions: str, doing: str = "this request") -> None:
    """403 naming every permission in `permissions` the caller lacks."""
    missing = [p for p in permissions if not caller.can(p)]
    if missing:
        raise ApiError(
            403,
            "forbidden",
            f"{doing} needs the {', '.join(missing)} permission"
            + ("s" if len(missing) > 1 else "")
            + f", which {caller.principal!r} does not hold",
            {"missing": missing},
        )


@dataclass(frozen=True)
class KeyWatch:
    """The key a long request (a live stream) was opened with, checked again while it lasts: it
    must still be in the keys file, unexpired, name the same principal and hold `permission`."""

    keys: KeyStore
    token: str
    principal: str
    permission: str

    async def refused(self) -> ApiError | None:
        """Why the key no longer holds, or None. Looks at the keys file when it is due (at most
        once a second, in a thread), else checks the keys in memory."""
        try:
            if self.keys.due():
                caller = await anyio.to_thread.run_sync(self.keys.authenticate, self.token)
            else:
                caller = self.keys.authenticate(self.token, look=False)
            if caller.principal != self.principal:
                raise ApiError(401, "unauthorized", "the key now names another principal")
            require(caller, self.permission, doing="this stream")
        except ApiError as err:
            return err
        return None
