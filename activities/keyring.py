"""Keyrings of 32-byte keys named by id, as settings give them (`id:BASE64,...` plus one key
under the current id): the payload encryption keys and the link-signing keys read the same way.
Errors name the setting, never a key."""

from __future__ import annotations

import base64
import binascii
import re

KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KEY_BYTES = 32


def parse_keyring(
    entries: str | None, single: str | None, current: str, env: str
) -> dict[str, bytes]:
    """Key id -> 32-byte key from `{env}_KEYS` (`entries`) plus `{env}_KEY` (`single`, under
    `{env}_KEY_ID`, `current`); empty when neither is set. Old ids stay in the ring until the
    operator removes them, so what was made under them still verifies or decrypts."""
    ring: dict[str, bytes] = {}
    for part in (entries or "").split(","):
        if not part.strip():
            continue
        key_id, sep, material = part.strip().partition(":")
        if not sep or not KEY_ID.match(key_id):
            raise ValueError(
                f"{env}_KEYS: each entry is `id:BASE64` with an id of letters, digits, `.`, `_` "
                "or `-`"
            )
        if key_id in ring:
            raise ValueError(f"{env}_KEYS: key id {key_id!r} appears twice")
        ring[key_id] = key_bytes(material, f"{env}_KEYS entry {key_id!r}")
    if single:
        key = key_bytes(single, f"{env}_KEY")
        if ring.get(current, key) != key:
            raise ValueError(f"{env}_KEY and {env}_KEYS give key id {current!r} different keys")
        ring[current] = key
    if ring and current not in ring:
        raise ValueError(
            f"{env}_KEY_ID={current!r} is not in {env}_KEYS (ids: {', '.join(sorted(ring))})"
        )
    return ring


def key_bytes(material: str, name: str) -> bytes:
    """One key from its base64; the message names the setting and what is wrong, not the key."""
    try:
        key = base64.b64decode(material.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{name} must decode to {KEY_BYTES} bytes")
    return key
