"""The web app's sessions: an API key exchanged for a sealed cookie, and its CSRF token.

The cookie holds the key itself, sealed (AES-256-GCM) under a key derived from
STEPGATE_UI_SECRET, with the principal, an expiry and a session id: no session store, so every
API replica that shares the secret reads it, and each request checks the key again against the
keys file (a removed, rotated or expired key ends the session at once). The cookie is HttpOnly,
SameSite=Strict, Secure outside development, and sent under /ui only; the JSON API never reads
it. Signing out forgets the session id in this process (the cookie is cleared too).

A form's CSRF token is an HMAC of the session id: it cannot be made without the secret, and it
changes with each sign-in. SameSite=Strict already keeps other sites' forms from carrying the
cookie; the token is the second lock."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from activities.config import Settings
from api.errors import ApiError

log = structlog.get_logger("stepgate.api")

COOKIE = "stepgate_session"
COOKIE_PATH = "/ui"
# A sealed cookie is a few hundred bytes; anything much longer is not one of ours.
MAX_COOKIE_CHARS = 4_096
NONCE_BYTES = 12
# Signed-out session ids kept (each until its cookie would have expired anyway).
MAX_ENDED = 100_000


# Failed sign-ins one client address may make per window before it must wait.
FAILURES_PER_WINDOW = 10
WINDOW_S = 60.0
MAX_TRACKED = 10_000


class Failures:
    """Recent failed sign-ins by client address (this process): keys are long random strings,
    and guessing them one request at a time is slowed further."""

    def __init__(self) -> None:
        self._by: dict[str, deque[float]] = {}

    def check(self, who: str) -> None:
        now = time.monotonic()
        seen = self._by.get(who)
        while seen and seen[0] <= now - WINDOW_S:
            seen.popleft()
        if seen and len(seen) >= FAILURES_PER_WINDOW:
            wait = int(seen[0] + WINDOW_S - now) + 1
            raise ApiError(
                429,
                "too_many_sign_ins",
                f"too many failed sign-ins from this address; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, who: str) -> None:
        if len(self._by) >= MAX_TRACKED and who not in self._by:
            self._by.pop(next(iter(self._by)))
        self._by.setdefault(who, deque()).append(time.monotonic())


@dataclass(frozen=True)
class Session:
    token: str
    principal: str
    expires: float
    sid: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Seals and opens session cookies; tells and checks CSRF tokens."""

    def __init__(self, secret: bytes, ttl_s: float, *, secure: bool) -> None:
        self._seal = AESGCM(hashlib.sha256(b"stepgate-ui-seal\0" + secret).digest())
        self._mac = hashlib.sha256(b"stepgate-ui-csrf\0" + secret).digest()
        self.ttl_s = ttl_s
        self.secure = secure
        self._ended: dict[str, float] = {}
        self.failures = Failures()

    @classmethod
    def from_settings(cls, settings: Settings) -> Sessions:
        secret = settings.stepgate_ui_secret
        if secret is None:
            log.warning(
                "ui_secret_unset",
                note="web app sessions end when this process restarts and do not carry to "
                "other replicas; set STEPGATE_UI_SECRET",
            )
        raw = secret.encode() if secret else os.urandom(32)
        return cls(
            raw,
            settings.stepgate_ui_session_minutes * 60.0,
            secure=settings.stepgate_env != "development",
        )

    def begin(self, token: str, principal: str) -> tuple[str, Session]:
        """A new session for this key: its cookie value and what it holds."""
        session = Session(token, principal, time.time() + self.ttl_s, secrets.token_urlsafe(16))
        plain = json.dumps(
            {"t": session.token, "p": session.principal, "e": session.expires, "s": session.sid}
        ).encode()
        nonce = os.urandom(NONCE_BYTES)
        return _b64(nonce + self._seal.encrypt(nonce, plain, COOKIE.encode())), session

    def open(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None when it is missing, forged, expired or signed out."""
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        try:
            sealed = _unb64(cookie)
            plain = self._seal.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], COOKIE.encode())
            data = json.loads(plain)
            session = Session(str(data["t"]), str(data["p"]), float(data["e"]), str(data["s"]))
        except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.expires <= time.time() or session.sid in self._ended:
            return None
        return session

    def end(self, session: Session) -> None:
        """Sign out: this session's cookie is refused from now on (in this process)."""
        now = time.time()
        if len(self._ended) >= MAX_ENDED:
            self._ended = {sid: t for sid, t in self._ended.items() if t > now}
            while len(self._ended) >= MAX_ENDED:  # all still live: forget the oldest
                self._ended.pop(next(iter(self._ended)))
        self._ended[session.sid] = session.expires

    def csrf(self, session: Session) -> str:
        return _b64(hmac.new(self._mac, session.sid.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf(session), token)

    def cookie_header(self, value: str) -> str:
        """The Set-Cookie value of a new session."""
        secure = "; Secure" if self.secure else ""
        return (
            f"{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={int(self.ttl_s)}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )

    def clear_header(self) -> str:
        secure = "; Secure" if self.secure else ""
        return f"{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
