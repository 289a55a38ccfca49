"""SMTP for notify.email: the server's host checked against the outbound policy, the connection
made to the very address checked (the name stays for TLS), STARTTLS or TLS, login, and SMTP's
failures sorted into retryable or not, never echoing a credential."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from ipaddress import ip_address
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.addresses import IPAddress
from activities.config import Settings
from activities.egress import (
    EGRESS_REFUSED,
    EgressPolicy,
    Endpoint,
    policy_from_settings,
    tool_grants,
)
from activities.egress_client import system_resolve
from activities.errors import fatal, transient
from activities.masking import mask_text

TOOL = "notify.email"


async def checked_address(settings: Settings) -> str:
    """The address to connect to for STEPGATE_SMTP_HOST, once the policy allows it (the host is
    the operator's choice, so it is open to notify.email even on a private address)."""
    host, port = settings.stepgate_smtp_host, settings.stepgate_smtp_port
    base = policy_from_settings(settings)
    policy = EgressPolicy(base.allow, base.endpoints, granted=tool_grants(settings).get(TOOL, ()))

    async def resolve(name: str, at: int) -> list[IPAddress]:
        try:
            return [ip_address(name.strip("[]"))]
        except ValueError:
            return await system_resolve(name, at)

    try:
        ips = await resolve(host, port)
    except OSError as err:
        raise transient(f"cannot resolve STEPGATE_SMTP_HOST: {err.strerror}", "SmtpError") from None
    known: dict[Endpoint, frozenset[IPAddress]] = {}
    for endpoint in policy.endpoints_on(port):
        try:
            known[endpoint] = frozenset(await resolve(endpoint.host, endpoint.port))
        except OSError:
            known[endpoint] = frozenset()
    refused = policy.refusal(host, port, ips, known)
    if refused:
        raise fatal(refused, EGRESS_REFUSED)
    if not ips:
        raise transient("STEPGATE_SMTP_HOST has no address", "SmtpError")
    return str(ips[0])


class _Pinned(smtplib.SMTP):
    """SMTP to the address that was checked; the host name it was made with stays for STARTTLS's
    and TLS's certificate check."""

    def __init__(self, pinned: str, host: str, port: int, **kwargs: Any) -> None:
        self.pinned = pinned
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.pinned, port), timeout, self.source_address)


class _PinnedTls(smtplib.SMTP_SSL, _Pinned):
    """TLS from the first byte: SMTP_SSL wraps the pinned connection, checking the name."""

    def __init__(self, pinned: str, host: str, port: int, **kwargs: Any) -> None:
        self.pinned = pinned
        smtplib.SMTP_SSL.__init__(self, host, port, **kwargs)


def deliver(
    settings: Settings, pinned: str, messages: list[EmailMessage], timeout_s: float
) -> tuple[int, list[str]]:
    """Send `messages` over one connection (blocking: run it in a thread). Returns how many
    were accepted and the failure of each refused one; a connection or login failure raises."""
    host, port = settings.stepgate_smtp_host, settings.stepgate_smtp_port
    security = settings.stepgate_smtp_security
    password = settings.stepgate_smtp_password or ""
    hidden = {s for s in (password, settings.stepgate_smtp_username) if s}
    tls = ssl.create_default_context()
    sent, failed = 0, []
    try:
        smtp: smtplib.SMTP = (
            _PinnedTls(pinned, host, port, context=tls, timeout=timeout_s)
            if security == "tls"
            else _Pinned(pinned, host, port, timeout=timeout_s)
        )
        with smtp:
            smtp.ehlo()
            if security == "starttls":
                smtp.starttls(context=tls)
                smtp.ehlo()
            if settings.stepgate_smtp_username:
                smtp.login(settings.stepgate_smtp_username, password)
            for message in messages:
                try:
                    smtp.send_message(message)
                    sent += 1
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as err:
                    failed.append(mask_text(_describe(err), hidden))
    except (smtplib.SMTPException, OSError) as err:
        raise _classify(err, hidden) from None
    return sent, failed


def _describe(err: BaseException) -> str:
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _ in err.recipients.values()})
        return f"recipient refused ({', '.join(codes)})"
    if isinstance(err, smtplib.SMTPResponseException):
        reply = (
            err.smtp_error.decode("utf-8", "replace") if isinstance(err.smtp_error, bytes) else ""
        )
        return f"{err.smtp_code} {reply[:200]}".strip()
    return str(err)[:300] or type(err).__name__


def _classify(err: BaseException, hidden: set[str]) -> ApplicationError:
    what = mask_text(_describe(err), hidden)
    if isinstance(err, smtplib.SMTPAuthenticationError):
        return fatal(f"the SMTP server refused the login: {what}", "SmtpAuthError")
    if isinstance(err, smtplib.SMTPNotSupportedError):
        return fatal(f"the SMTP server does not offer it: {what}", "SmtpError")
    if isinstance(err, ssl.SSLCertVerificationError):
        return fatal(f"the SMTP server's certificate: {err.verify_message}", "SmtpTlsError")
    if isinstance(err, smtplib.SMTPResponseException) and 500 <= err.smtp_code < 600:
        return fatal(f"the SMTP server refused: {what}", "SmtpError")
    return transient(f"SMTP failed: {what}", "SmtpError")
