"""The tools' HTTP client under the policy: DNS answers, TLS names, proxies and logs."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.exceptions import ApplicationError

from activities import default_registry
from activities.addresses import IPAddress
from activities.config import Settings
from activities.egress_client import make_http_client
from activities.logs import configure_logging
from activities.runtime import ToolActivities
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer
from tests.tools.test_egress import MakeActs, ok, refused


@pytest.fixture
async def custom_acts(tool_settings: Settings) -> AsyncIterator[Callable[..., ToolActivities]]:
    """ToolActivities over a client built with a test resolver and TLS trust; closed after."""
    clients: list[httpx.AsyncClient] = []

    def make(settings: Settings | None = None, **client_kw: Any) -> ToolActivities:
        settings = settings or tool_settings
        http = make_http_client(settings, **client_kw)
        clients.append(http)
        return ToolActivities(default_registry(entry_points=False), settings, http=http)

    yield make
    for http in clients:
        await http.aclose()


def resolver(answers: dict[str, list[list[str]]], calls: list[str]) -> Any:
    """A DNS stand-in: each lookup of a name pops its next answer (the last one repeats)."""

    async def resolve(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        queue = answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ipaddress.ip_address(a) for a in answer]

    return resolve


async def test_request_is_refused_when_a_name_resolves_to_loopback(
    custom_acts: Callable[..., ToolActivities], server: LocalServer, tool_settings: Settings
) -> None:
    """A public-looking name whose DNS answer is loopback (or mixes in loopback) is refused."""
    ok(server)
    calls: list[str] = []
    answers = {"rebind.example": [["127.0.0.1"]], "mixed.example": [["93.184.216.34", "127.0.0.1"]]}
    closed = tool_settings.model_copy(update={"stepgate_http_allow": []})
    acts = custom_acts(closed, resolve=resolver(answers, calls))
    for name in answers:
        message = await refused(acts, "http.request", {"url": f"http://{name}:{server.port}/x"})
        assert message == (
            f"refused 127.0.0.1:{server.port} ({name}): loopback (allow it with STEPGATE_HTTP_ALLOW)"
        )
    assert server.seen == []


async def test_request_connects_to_the_checked_address_when_dns_changes_its_answer(
    custom_acts: Callable[..., ToolActivities], server: LocalServer, tool_settings: Settings
) -> None:
    """The name is resolved once per connection and the connection goes to that very address:
    a later answer (the metadata address) is never used, and Host stays the name."""
    ok(server)
    calls: list[str] = []
    answers = {"rebind.example": [["127.0.0.1"], ["169.254.169.254"]]}
    acts = custom_acts(tool_settings, resolve=resolver(answers, calls))
    result = await acts.execute(
        make_call("http.request", {"url": f"http://rebind.example:{server.port}/x"})
    )
    assert result.output["json"] == {"host": f"rebind.example:{server.port}"}
    assert calls == ["rebind.example"]
    # The next connection sees the rebound answer, and is refused.
    other = custom_acts(tool_settings, resolve=resolver(answers, calls))
    message = await refused(
        other, "http.request", {"url": f"http://rebind.example:{server.port}/x"}
    )
    assert "169.254.169.254" in message and len(server.seen) == 1


async def test_proxy_variables_are_ignored_when_tools_connect(
    make_acts: MakeActs, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY cannot carry a tool's request past the policy: tools connect directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, server.base_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    await refused(make_acts(), "http.request", {"url": "http://169.254.169.254/latest/"})
    assert server.seen == [], "the request went to the proxy"


async def test_httpx_logs_no_url_when_level_is_info(
    tool_settings: Settings, server: LocalServer
) -> None:
    """After configure_logging, httpx and httpcore log nothing at INFO or DEBUG, so a secret in
    a query string never reaches the log."""
    ok(server)
    records: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    quiet = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    try:
        configure_logging(tool_settings.model_copy(update={"stepgate_log_level": "DEBUG"}))
        for name in quiet:
            logging.getLogger(name).addHandler(catcher)
        async with make_http_client(tool_settings) as http:
            response = await http.get(server.url("/x"), params={"token": "s3cr3t-in-query"})
        assert response.status_code == 200
    finally:
        root.handlers[:], root.level = saved
        for name, level in quiet.items():
            logging.getLogger(name).removeHandler(catcher)
            logging.getLogger(name).setLevel(level)
    assert not [r for r in records if "s3cr3t-in-query" in r.getMessage()]
    assert not records


def certificate_for(name: str, folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name` only: (server context, client context trusting it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    return server_ctx, client_ctx


async def test_tls_verifies_the_name_when_connecting_to_the_checked_address(
    custom_acts: Callable[..., ToolActivities], tool_settings: Settings, tmp_path: Path
) -> None:
    """The TCP connection goes to the checked IP while SNI, certificate check and Host stay on
    the name: a certificate for the name passes, the same server by bare IP fails verification."""
    server_ctx, client_ctx = certificate_for("secure.example", tmp_path)
    tls = LocalServer(tls=server_ctx).start()
    try:
        ok(tls)
        answers = {"secure.example": [["127.0.0.1"]]}
        acts = custom_acts(tool_settings, resolve=resolver(answers, []), verify=client_ctx)
        url = f"https://secure.example:{tls.port}/x"
        result = await acts.execute(make_call("http.request", {"url": url}))
        assert result.output["json"] == {"host": f"secure.example:{tls.port}"}
        assert tls.server_names == ["secure.example"]
        with pytest.raises(ApplicationError) as err:
            await acts.execute(make_call("http.request", {"url": tls.url("/x")}))
        assert "CERTIFICATE_VERIFY_FAILED" in err.value.message
    finally:
        tls.stop()
