"""Fixtures for the channel tools: settings with a public URL, link keys and an address book; a
fake Slack Web API and a real SMTP server (aiosmtpd), both on loopback, recording what they get."""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from email import message_from_bytes
from email.message import Message
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from activities.config import Settings
from activities.notice import GateNotice
from tests.tools.conftest import make_acts, server, tool_settings  # noqa: F401 (fixtures)
from tests.tools.server import LocalServer, Reply, Seen, json_reply

LINK_KEY = os.urandom(32)
BOT_TOKEN = "xoxb-test-" + base64.b32encode(os.urandom(10)).decode()
SMTP_USER, SMTP_PASSWORD = "mailer", "pw-" + base64.b32encode(os.urandom(10)).decode()
PUBLIC = "https://stepgate.example"


def hhmm(moment: datetime.datetime) -> str:
    return moment.strftime("%H:%M")


def book(hooks: LocalServer) -> dict[str, Any]:
    """alice (delegating to bob now), bob, and carol of role ops who is in her quiet hours now."""
    now = datetime.datetime.now(UTC)
    return {
        "alice": {
            "email": "alice@example.com",
            "slack": "U0ALICE",
            "webhook": hooks.url("/hook/alice"),
            "delegate": {"to": "bob", "until": (now + timedelta(days=1)).isoformat()},
        },
        "bob": {"email": "bob@example.com", "slack": "U0BOB", "webhook": hooks.url("/hook/bob")},
        "carol": {
            "email": "carol@example.com",
            "slack": "U0CAROL",
            "webhook": hooks.url("/hook/carol"),
            "roles": ["ops"],
            "quiet_hours": {
                "start": hhmm(now - timedelta(hours=2)),
                "end": hhmm(now + timedelta(hours=2)),
                "tz": "UTC",
            },
        },
    }


def held_until_carol_wakes(output: Any) -> None:
    """The output's held_until is when carol's quiet hours (book) end: on a minute, within the
    next two hours."""
    until = datetime.datetime.fromisoformat(output["held_until"])
    ahead = until - datetime.datetime.now(UTC)
    assert until.second == 0 and until.microsecond == 0 and until.utcoffset() == timedelta(0)
    assert timedelta(hours=1, minutes=58) < ahead <= timedelta(hours=2)


def notice(**over: Any) -> GateNotice:
    fields: dict[str, Any] = {
        "event": "opened",
        "pipeline": "deploy",
        "workflow_id": "deploy-42",
        "gate": "approve",
        "step": "ship",
        "stage": "before",
        "round": 2,
        "digest": "sha256:feed",
        "approvers": ["user:alice", "role:ops"],
        "actions": ["approve", "reject", "modify"],
        "review": "Ship build 42 to production",
    }
    return GateNotice.model_validate(fields | over)


@pytest.fixture
def channel_settings(
    tool_settings: Settings,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    server: LocalServer,  # noqa: F811
) -> dict[str, Any]:
    """Overrides for make_acts: public URL, one link key, the book, Slack at the fake API."""
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(book(server)))
    return {
        "stepgate_public_url": PUBLIC,
        "stepgate_link_key": base64.b64encode(LINK_KEY).decode(),
        "stepgate_address_book": path,
        "stepgate_slack_api_url": server.url("/api"),
        "stepgate_slack_bot_token": BOT_TOKEN,
    }


class FakeSlack:
    """chat.postMessage and chat.update on a LocalServer; refuses a wrong bearer token."""

    def __init__(self, api: LocalServer) -> None:
        self.server = api
        self.ts = itertools.count(1)
        self.error: str | None = None
        for method in ("chat.postMessage", "chat.update"):
            api.route("POST", f"/api/{method}", self._answer)

    def _answer(self, seen: Seen) -> Reply:
        if seen.headers.get("authorization") != f"Bearer {BOT_TOKEN}":
            return json_reply({"ok": False, "error": "invalid_auth"})
        if self.error == "echo":  # a broken proxy that echoes the request's headers
            return Reply(400, f"bad request: {seen.headers}".encode())
        if self.error:
            return json_reply({"ok": False, "error": self.error})
        body = seen.json()
        channel = body["channel"]
        channel = "D" + channel[1:] if channel.startswith("U") else channel
        return json_reply(
            {"ok": True, "channel": channel, "ts": body.get("ts") or f"{next(self.ts)}.0"}
        )

    def calls(self, method: str) -> list[dict[str, Any]]:
        return [s.json() for s in self.server.seen if s.path == f"/api/{method}"]


@pytest.fixture
def slack(server: LocalServer) -> FakeSlack:  # noqa: F811
    return FakeSlack(server)


def certificate(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1: the server's context and the file to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


@dataclass
class Mailbox:
    """What the SMTP server accepted, and the logins it saw."""

    mails: list[tuple[list[str], Message]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, _server: Any, session: Any, envelope: Envelope) -> str:
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(
        self, _server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            self.logins.append((user, password))
            if (user, password) == (SMTP_USER, SMTP_PASSWORD):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class _AnyPort(Controller):
    """aiosmtpd's controller on a port the system picks."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., tuple[Mailbox, dict[str, Any]]]]:
    """Starts an SMTP server (STARTTLS required before AUTH, or TLS from the start) and gives
    the mailbox with the settings overrides that send to it; the client trusts its certificate."""
    started: list[Controller] = []
    context, cert_file = certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))

    def start(security: str = "starttls") -> tuple[Mailbox, dict[str, Any]]:
        box = Mailbox()
        tls = {"ssl_context": context} if security == "tls" else {"tls_context": context}
        controller = _AnyPort(
            box,
            hostname="127.0.0.1",
            port=0,
            authenticator=box.authenticate,
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS; with TLS from the first byte it is TLS anyway.
            auth_require_tls=security == "starttls",
            require_starttls=security == "starttls",
            **tls,
        )
        controller.start()
        started.append(controller)
        return box, {
            "stepgate_smtp_host": "127.0.0.1",
            "stepgate_smtp_port": controller.port,
            "stepgate_smtp_security": security,
            "stepgate_smtp_username": SMTP_USER,
            "stepgate_smtp_password": SMTP_PASSWORD,
            "stepgate_smtp_from": "stepgate@example.com",
        }

    yield start
    for controller in started:
        controller.stop()


def all_text(*values: Any) -> str:
    return json.dumps(values, default=str)
