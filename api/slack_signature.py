"""Slack's request signature (v0), checked before anything a request says is believed: the
`X-Slack-Signature` header must be `v0=` + HMAC-SHA256(signing secret,
`v0:{X-Slack-Request-Timestamp}:{raw body}`), compared in constant time, and the timestamp within
MAX_SKEW_S of now. Pure: no I/O, the clock passed in."""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict

VERSION = "v0"
# Slack's own advice: refuse a request whose timestamp is more than five minutes off.
MAX_SKEW_S = 300
# What an interaction's body may be; Slack's are a few KiB (a message's blocks and state).
MAX_BODY_BYTES = 65_536
# `v0=` and 64 hex digits; a Unix time in seconds.
SIGNATURE_CHARS = len(VERSION) + 1 + 64
MAX_TIMESTAMP_CHARS = 12
# Signatures of accepted requests remembered so that an exact replay is refused.
MAX_REMEMBERED = 10_000


class SignatureRefused(Exception):
    """Why a request is not Slack's: missing, malformed, stale or a bad signature."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature Slack sends for `body` at `timestamp`."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Nothing when the request is Slack's; SignatureRefused saying why otherwise. Sizes are
    checked before any work, the timestamp before the MAC, and the MAC in constant time."""
    if not secret:
        raise SignatureRefused("no signing secret is configured")
    if timestamp is None or signature is None:
        raise SignatureRefused("X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if len(body) > MAX_BODY_BYTES:
        raise SignatureRefused(f"a body of at most {MAX_BODY_BYTES} bytes")
    if not (0 < len(timestamp) <= MAX_TIMESTAMP_CHARS and timestamp.isascii()):
        raise SignatureRefused("the timestamp is not a Unix time")
    if not timestamp.isdigit():  # after isascii: only 0-9
        raise SignatureRefused("the timestamp is not a Unix time")
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        raise SignatureRefused(f"the timestamp is more than {MAX_SKEW_S} s from now")
    if len(signature) != SIGNATURE_CHARS or not signature.isascii():
        raise SignatureRefused("the signature is malformed")
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode()):
        raise SignatureRefused("the signature does not match")


class Replays:
    """Signatures accepted while their timestamp could still pass (twice MAX_SKEW_S: a timestamp
    may be that far ahead), in this process, at most MAX_REMEMBERED of them: the
    same signed request sent again is refused. A replay could decide nothing new anyway (one
    vote per principal, the digest in the button), but it is not Slack's either."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first(self, signature: str, now: float) -> bool:
        """Remember the signature; False when it was seen already."""
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if at > now - 2 * MAX_SKEW_S and len(self._seen) < MAX_REMEMBERED:
                break
            self._seen.pop(oldest)
        if signature in self._seen:
            return False
        self._seen[signature] = now
        return True
