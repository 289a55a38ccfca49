"""API keys: who a request comes from, and which roles it holds."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from activities.documents import parse_document
from api.errors import ApiError

ADMIN = "admin"
OPERATOR = "operator"
VIEWER = "viewer"
KEYS_ENV = "STEPGATE_API_KEYS_FILE"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stepgate"'}


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=8)
    principal: str = Field(min_length=1, pattern=r"^[^\s:]+$")
    roles: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of one request."""

    principal: str
    roles: tuple[str, ...]

    @property
    def principals(self) -> list[str]:
        """How gates name this caller: `user:<p>` and `role:<r>`."""
        return [f"user:{self.principal}", *(f"role:{r}" for r in self.roles)]

    def has(self, *roles: str) -> bool:
        return ADMIN in self.roles or any(r in self.roles for r in roles)


class KeyStore:
    """Configured keys, kept only as sha256 digests so a memory dump does not reveal them."""

    def __init__(self, entries: list[KeyEntry] | None) -> None:
        # None means "no keys file configured": every protected route refuses.
        self.configured = entries is not None
        self._keys = [
            (hashlib.sha256(e.key.encode()).digest(), Caller(e.principal, tuple(e.roles)))
            for e in entries or []
        ]

    @classmethod
    def load(cls, path: Path | None) -> KeyStore:
        if path is None:
            return cls(None)
        try:
            data = parse_document(path.read_text())
        except OSError as err:
            raise ValueError(f"{KEYS_ENV}={path} cannot be read: {err.strerror}") from None
        try:
            entries = TypeAdapter(list[KeyEntry]).validate_python(data or [])
        except ValidationError as err:
            # Say where, never echo the values: they may be keys.
            where = ", ".join(".".join(map(str, e["loc"])) for e in err.errors())
            raise ValueError(f"{KEYS_ENV}={path}: invalid entries at {where}") from None
        return cls(entries)

    def authenticate(self, token: str | None) -> Caller:
        if not self.configured:
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
        digest = hashlib.sha256(token.encode()).digest()
        found: Caller | None = None
        # Every entry is compared, so the time taken does not tell which key came close.
        for known, caller in self._keys:
            if hmac.compare_digest(known, digest):
                found = caller
        if found is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown API key",
                headers={"WWW-Authenticate": 'Bearer realm="stepgate", error="invalid_token"'},
            )
        return found


def require(caller: Caller, *roles: str, doing: str) -> None:
    """403 unless the caller holds one of `roles` (admin holds every role)."""
    if not caller.has(*roles):
        wanted = " or ".join([ADMIN, *roles])
        raise ApiError(403, "forbidden", f"{doing} needs the {wanted} role")
