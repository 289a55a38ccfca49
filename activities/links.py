"""Approvers' signed links: a token bound to one gate round, its subject's digest, one principal
and an expiry, signed with a link key (STEPGATE_LINK_KEYS). Minted inside the notify tools, so
no token is ever in history; verified by the API's link page, which also checks the gate is still
open, the round and digest unchanged, and the principal has not voted.

A token is `KID.PAYLOAD.SIG`, each part base64url without padding: the key id, the claims as
JSON, and HMAC-SHA256 over both under that key. The payload is parsed only once the signature
holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from activities.keyring import KEY_ID

# Far above what the bounded claims make (ids of 1,000 characters, base64'd); checked before any
# other work, so a huge token costs nothing.
MAX_TOKEN_CHARS = 4_096
NONCE_BYTES = 12
# Binds the signature to this use and format: a key shared by mistake with another signer cannot
# make a link.
_CONTEXT = b"stepgate-link-v1\n"
_PART = re.compile(r"^[A-Za-z0-9_-]+$")

RefusedReason = Literal["malformed", "unknown_key", "bad_signature", "expired"]


class LinkRefused(ValueError):
    """A token that does not verify; `reason` says why, never echoing the token."""

    def __init__(self, reason: RefusedReason) -> None:
        super().__init__(f"link refused: {reason}")
        self.reason: RefusedReason = reason


class LinkClaims(BaseModel):
    """What one link lets its principal do: decide one round of one gate on one subject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow_id: str = Field(min_length=1, max_length=1_000)
    gate: str = Field(min_length=1, max_length=1_000)
    round: int = Field(ge=0)
    digest: str = Field(max_length=200)
    principal: str = Field(min_length=1, max_length=200)
    expires: AwareDatetime
    nonce: str = Field(min_length=1, max_length=64)


def new_nonce() -> str:
    """A fresh random nonce, so two links for the same claims differ."""
    return secrets.token_urlsafe(NONCE_BYTES)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, kid: str, payload: str) -> bytes:
    return hmac.new(key, _CONTEXT + f"{kid}.{payload}".encode("ascii"), hashlib.sha256).digest()


def mint(claims: LinkClaims, keyring: Mapping[str, bytes], key_id: str) -> str:
    """The token for `claims`, signed with `keyring[key_id]` (KeyError when it is not there)."""
    body = claims.model_dump(mode="json")
    body["expires"] = int(claims.expires.timestamp())
    kid = _b64(key_id.encode("ascii"))
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    token = f"{kid}.{payload}.{_b64(_signature(keyring[key_id], kid, payload))}"
    if len(token) > MAX_TOKEN_CHARS:
        raise ValueError(f"link claims too long for a token of {MAX_TOKEN_CHARS} characters")
    return token


def verify(token: str, keyring: Mapping[str, bytes], now: datetime) -> LinkClaims:
    """The claims of a token signed with a key of `keyring` and not expired at `now`; otherwise
    LinkRefused: malformed, unknown_key, bad_signature or expired."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise LinkRefused("malformed")
    parts = token.split(".")
    if len(parts) != 3 or not all(_PART.match(p) for p in parts):
        raise LinkRefused("malformed")
    kid, payload, sig = parts
    try:
        key_id = _unb64(kid).decode("ascii")
        given = _unb64(sig)
    except (binascii.Error, ValueError):
        raise LinkRefused("malformed") from None
    if not KEY_ID.match(key_id):
        raise LinkRefused("malformed")
    key = keyring.get(key_id)
    if key is None:
        raise LinkRefused("unknown_key")
    if not hmac.compare_digest(_signature(key, kid, payload), given):
        raise LinkRefused("bad_signature")
    try:
        body = json.loads(_unb64(payload))
        if not isinstance(body, dict) or not isinstance(body.get("expires"), int):
            raise LinkRefused("malformed")
        body["expires"] = datetime.fromtimestamp(body["expires"], UTC)
        claims = LinkClaims.model_validate(body)
    except (binascii.Error, ValueError, OverflowError, OSError, ValidationError):
        raise LinkRefused("malformed") from None
    if now >= claims.expires:
        raise LinkRefused("expired")
    return claims


def link_url(public_url: str, token: str) -> str:
    """Where a link opens: the API's link page."""
    return f"{public_url.rstrip('/')}/ui/links/{token}"


def gate_page_url(public_url: str, workflow_id: str, gate: str) -> str:
    """The gate's page in the web app, where a person signs in: the link for roles and shared
    channels."""
    return f"{public_url.rstrip('/')}/ui/runs/{quote(workflow_id, safe='')}/gates/{quote(gate, safe='')}"
