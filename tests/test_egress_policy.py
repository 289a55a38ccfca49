"""The outbound policy's rules, without a network: entries, ranges and Temporal's endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import ip_address

import pytest
from pydantic import ValidationError

from activities.addresses import denied_range, parse_allow_entry
from activities.config import Settings
from activities.egress import EgressPolicy, policy_from_settings, temporal_endpoints, tool_grants
from tests.conftest import ROOT


def make_settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.3.2.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.64.0.1", "shared address space"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::127.0.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_denied_range_names_the_rule_when_address_is_special(
    address: str, reason: str | None
) -> None:
    """Each special-purpose range is denied under its own name; public addresses are not."""
    assert denied_range(ip_address(address)) == reason


@pytest.mark.parametrize(
    ("text", "name", "network", "port"),
    [
        ("127.0.0.1", None, "127.0.0.1/32", None),
        ("127.0.0.1:8080", None, "127.0.0.1/32", 8080),
        ("10.0.0.0/8", None, "10.0.0.0/8", None),
        ("10.0.0.0/8:443", None, "10.0.0.0/8", 443),
        ("::1", None, "::1/128", None),
        ("[::1]:8080", None, "::1/128", 8080),
        ("fd00::/8", None, "fd00::/8", None),
        ("[fd00::/8]:443", None, "fd00::/8", 443),
        ("Registry.Internal.", "registry.internal", None, None),
        ("registry.internal:5000", "registry.internal", None, 5000),
    ],
)
def test_parse_allow_entry_accepts_each_documented_form(
    text: str, name: str | None, network: str | None, port: int | None
) -> None:
    """host, host:port, cidr and cidr:port, in IPv4, IPv6 and DNS-name forms, parse exactly."""
    entry = parse_allow_entry(text)
    assert entry.name == name
    assert (str(entry.network) if entry.network else None) == network
    assert entry.port == port


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.1/8", "host bits set"),
        ("10.0.0.0/33", "not a CIDR block"),
        ("http://10.0.0.1", "not a URL"),
        ("*.internal", "wildcards are not supported"),
        ("host:0", "not a number from 1 to 65535"),
        ("host:65536", "not a number from 1 to 65535"),
        ("host:http", "not a number from 1 to 65535"),
        ("[::1", "without its ]"),
        ("[host]:80", "brackets are for IPv6"),
        ("fd00::/8:443", "goes in brackets"),
        ("1.2.3", "looks like an IP address"),
        ("0x7f000001", "looks like an IP address"),
        ("bad_name", "not a host name"),
        ("a b", "not a URL"),
        ("x" * 301, "longer than 300"),
    ],
)
def test_parse_allow_entry_names_the_problem_when_entry_is_bad(text: str, problem: str) -> None:
    """A bad entry raises ValueError naming the variable, the entry and what is wrong."""
    with pytest.raises(ValueError) as err:
        parse_allow_entry(text)
    assert "STEPGATE_HTTP_ALLOW entry" in str(err.value) and problem in str(err.value)


def test_settings_refuse_a_bad_allow_entry_when_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STEPGATE_HTTP_ALLOW is split on commas (IPv6 brackets included) and checked at load."""
    monkeypatch.setenv("STEPGATE_HTTP_ALLOW", "[::1]:8080, 10.0.0.0/8")
    assert make_settings().stepgate_http_allow == ["[::1]:8080", "10.0.0.0/8"]
    monkeypatch.setenv("STEPGATE_HTTP_ALLOW", "10.0.0.0/8,10.0.0.1/8")
    with pytest.raises(ValidationError) as err:
        make_settings()
    assert "STEPGATE_HTTP_ALLOW entry '10.0.0.1/8'" in str(err.value)


@pytest.mark.server  # starts `python worker.py`
def test_worker_refuses_to_start_when_an_allow_entry_is_bad() -> None:
    """`python worker.py` with a malformed entry exits 2 at once, saying which entry is wrong."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGATE_", "TEMPORAL_"))}
    env.update(
        STEPGATE_HTTP_ALLOW="127.0.0.1,metadata.internal:99999", TEMPORAL_ADDRESS="127.0.0.1:1"
    )
    proc = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    output = proc.stdout + proc.stderr
    assert "STEPGATE_HTTP_ALLOW entry 'metadata.internal:99999'" in output
    assert "unreachable" not in output  # refused before trying to reach Temporal


def test_temporal_endpoints_come_from_the_worker_settings() -> None:
    """Frontend, HTTP API and Web UI are known; the HTTP API defaults to the frontend host:7243."""
    found = temporal_endpoints(
        make_settings(temporal_address="temporal:7233", stepgate_ui_url="https://ui.example/")
    )
    assert [(e.host, e.port) for e in found] == [
        ("temporal", 7233),
        ("temporal", 7243),
        ("ui.example", 443),
    ]
    assert "HTTP API" in found[1].what and "Web UI" in found[2].what


def test_refusal_keeps_temporal_closed_when_its_network_is_allowed() -> None:
    """Allowing the host or network of a Temporal endpoint does not open it; its exact
    host:port entry does, and then for that port only."""
    base = make_settings(
        temporal_address="10.0.0.5:7233", stepgate_temporal_http_address="10.0.0.5:7243"
    )
    ip = ip_address("10.0.0.5")
    known = {e: frozenset({ip}) for e in temporal_endpoints(base)}

    def refusal(allow: list[str], port: int) -> str | None:
        policy = policy_from_settings(base.model_copy(update={"stepgate_http_allow": allow}))
        return policy.refusal("10.0.0.5", port, [ip], known)

    for allow in (["10.0.0.5"], ["10.0.0.0/8"], ["10.0.0.0/8:7243"]):
        message = refusal(allow, 7243)
        assert message and "is the Temporal HTTP API" in message, (allow, message)
        assert "only the exact entry 10.0.0.5:7243" in message
    assert refusal(["10.0.0.5:7243"], 7243) is None
    assert "Temporal frontend" in (refusal(["10.0.0.5:7243"], 7233) or "")
    assert refusal(["10.0.0.0/8"], 8080) is None


def test_refusal_finds_temporal_on_every_loopback_spelling() -> None:
    """A local Temporal answers on 127.0.0.1, 127.0.0.2, 0.0.0.0 and ::1 alike: all refused."""
    policy = EgressPolicy(
        allow=(parse_allow_entry("127.0.0.0/8"), parse_allow_entry("::/127")),
        endpoints=temporal_endpoints(make_settings(temporal_address="localhost:7233")),
    )
    frontend = policy.endpoints[0]
    known = {frontend: frozenset({ip_address("127.0.0.1")})}
    for name, address in [
        ("127.0.0.2", "127.0.0.2"),
        ("0.0.0.0", "0.0.0.0"),
        ("::1", "::1"),
        ("LOCALHOST.", "127.0.0.1"),
    ]:
        message = policy.refusal(name, 7233, [ip_address(address)], known)
        assert message and "is the Temporal frontend" in message, name


def test_refusal_checks_every_address_when_a_name_has_several() -> None:
    """One denied address among public ones refuses the whole name (a rebinding answer)."""
    policy = EgressPolicy()
    ips = [ip_address("93.184.216.34"), ip_address("127.0.0.1")]
    assert policy.refusal("mixed.example", 80, ips, {}) == (
        "refused 127.0.0.1:80 (mixed.example): loopback (allow it with STEPGATE_HTTP_ALLOW)"
    )
    assert policy.refusal("public.example", 80, ips[:1], {}) is None


def test_tool_grants_open_operator_urls_for_their_own_tool_only() -> None:
    """The LLM base URL is granted to llm.chat, the notify URL to notify.webhook and the Slack
    Web API (Slack's own by default) to notify.slack, by host:port."""
    grants = tool_grants(
        make_settings(
            stepgate_llm_base_url="http://10.1.1.1:11434/v1",
            stepgate_notify_url="https://chat.internal/hooks/abc",
        )
    )
    assert {t: [e.text for e in entries] for t, entries in grants.items()} == {
        "llm.chat": ["10.1.1.1:11434"],
        "notify.webhook": ["chat.internal:443"],
        "notify.slack": ["slack.com:443"],
    }
    assert set(tool_grants(make_settings())) == {"notify.slack"}


def test_tool_grant_does_not_open_temporal_when_the_operator_url_points_at_it() -> None:
    """A grant lets its tool past the range check for its host:port, never past Temporal's rule."""
    base = make_settings(
        temporal_address="127.0.0.1:7233", stepgate_notify_url="http://127.0.0.1:7243/hook"
    )
    loopback = ip_address("127.0.0.1")
    policy = EgressPolicy(
        endpoints=temporal_endpoints(base), granted=tool_grants(base)["notify.webhook"]
    )
    message = policy.refusal("127.0.0.1", 7243, [loopback], {})
    assert message and "is the Temporal HTTP API" in message
    elsewhere = tool_grants(make_settings(stepgate_notify_url="http://127.0.0.1:9999/h"))
    policy = EgressPolicy(endpoints=temporal_endpoints(base), granted=elsewhere["notify.webhook"])
    assert policy.refusal("127.0.0.1", 9999, [loopback], {}) is None
