"""The terminal client as a process, without an API: a connection error names the URL it tried,
an answer that is not the API's is named for what it is (its control characters neutralised),
and every command takes `--json`."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from api.cli import parser
from api.cli_base import MAX_PAGES
from tests.conftest import ROOT
from tests.support.api import cli_env
from tests.tools.server import LocalServer, Reply, json_reply

# A command line for every command (and subcommand) the client has, to check each takes --json.
SAMPLES = {
    "start": ["start", "hello"],
    "govern": ["govern", "do it"],
    "status": ["status", "w"],
    "watch": ["watch", "w"],
    "revoke": ["revoke", "w", "g1"],
    "inbox": ["inbox"],
    "versions": ["versions"],
    "versions set-current": ["versions", "set-current", "b1"],
    "approve": ["approve", "w", "g"],
    "reject": ["reject", "w", "g"],
    "modify": ["modify", "w", "g", "--patch", "{}"],
    "retry": ["retry", "w", "g"],
    "skip": ["skip", "w", "g"],
    "list": ["list"],
    "audit": ["audit", "w"],
    "cancel": ["cancel", "w"],
    "pause": ["pause", "w"],
    "resume": ["resume", "w"],
    "memory search": ["memory", "search", "q"],
    "memory delete": ["memory", "delete", "1"],
    "mcp": ["mcp"],
}


def commands(p: argparse.ArgumentParser, prefix: str = "") -> Iterator[str]:
    """Every command line a parser takes: `status`, `versions`, `versions set-current`,
    `memory search` (not `memory` alone: it needs its subcommand), ..."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{prefix} {name}".strip()
                subs = [a for a in child._actions if isinstance(a, argparse._SubParsersAction)]
                if not any(a.required for a in subs):
                    yield path
                yield from commands(child, path)


def stepgate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=cli_env(url, "some-key"),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_every_command_takes_json_before_or_after() -> None:
    """`--json` is accepted by every command, after it and before it (the samples cover every
    command the parser has, so a new one must be added here)."""
    p = parser()
    assert sorted(commands(p)) == sorted(SAMPLES)
    for argv in SAMPLES.values():
        assert p.parse_args([*argv, "--json"]).json is True
        assert p.parse_args(["--json", *argv]).json is True
        assert p.parse_args(argv).json is False


def test_connection_error_names_the_url_it_tried(refusing_port: int) -> None:
    """With nothing listening at STEPGATE_URL, the client says which URL it could not reach,
    with the path of the request (never the password the URL may carry), and exits 1 without a
    traceback."""
    url = f"http://127.0.0.1:{refusing_port}"
    done = stepgate(url, "status", "run-1")
    assert done.returncode == 1 and done.stdout == ""
    assert f"cannot reach the API at {url}/workflows/run-1" in done.stderr
    assert f"STEPGATE_URL is {url}" in done.stderr and "Traceback" not in done.stderr
    done = stepgate(f"http://proxy:hunter2@127.0.0.1:{refusing_port}", "list")
    assert f"cannot reach the API at {url}/workflows?page_size=50" in done.stderr
    assert "hunter2" not in done.stderr and "proxy" not in done.stderr


def test_an_answer_that_is_not_the_apis_is_named_and_neutralised() -> None:
    """A 200 that is not JSON (STEPGATE_URL pointing at some web page) is reported as such, not
    as a bad --input; an error page's terminal escapes are shown as `?`, never sent to the
    terminal."""
    server = LocalServer()
    page = Reply(200, b"<html>welcome</html>", {"Content-Type": "text/html"})
    server.route("GET", "/workflows/run-1", lambda seen: page)
    evil = Reply(502, b"bad gateway \x1b[2J\x1b]0;owned\x07 done", {"Content-Type": "text/plain"})
    server.route("GET", "/workflows/run-2", lambda seen: evil)
    server.route("GET", "/memory", lambda seen: json_reply({"hits": []}))
    server.start()
    try:
        url = server.url("")
        done = stepgate(url, "status", "run-1")
        assert done.returncode == 1
        assert f"{url}/workflows/run-1 answered 200 with something that is not JSON" in (
            done.stderr
        )
        done = stepgate(url, "status", "run-2")
        assert done.returncode == 1 and "\x1b" not in done.stderr and "\x07" not in done.stderr
        assert "HTTP 502 bad gateway ?[2J?]0;owned? done" in done.stderr
        assert stepgate(url, "memory", "search", "x", "--json").stdout == '{\n  "hits": []\n}\n'
    finally:
        server.stop()


def test_a_list_that_never_ends_is_read_a_bounded_number_of_pages() -> None:
    """An inbox whose every page names a next one (a broken or hostile server) is read at most
    MAX_PAGES times; the client then stops, saying so, instead of reading for ever."""
    server = LocalServer()
    server.route("GET", "/approvals", lambda seen: json_reply({"items": [], "next_cursor": "c"}))
    server.start()
    try:
        done = stepgate(server.url(""), "inbox")
        assert done.returncode == 1
        assert f"stopped after {MAX_PAGES} pages of /approvals" in done.stderr
        assert len(server.seen) == MAX_PAGES
    finally:
        server.stop()
