"""`make run` (scripts/run) on a machine where a port it needs is taken: it fails at once, naming
the port, the setting that chose it and what holds it, before it installs, starts or writes
anything."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ROOT

PORTS = ("TEMPORAL_PORT", "TEMPORAL_HTTP_PORT", "TEMPORAL_UI_PORT", "STEPGATE_API_PORT")
# Past the port check scripts/run installs and starts the stack; this bound is what "at once" means.
AT_ONCE_S = 10.0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real listener on a loopback port, as another program would hold it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_script(env_ports: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """scripts/run with these ports and its data in tmp_path/data. `make` is a stub that fails
    loudly: a run that got past the port check shows as status 97, never as an install."""
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "make").write_text("#!/bin/sh\necho 'run: got past the port check' >&2\nexit 97\n")
    (stub / "make").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}",
        "STEPGATE_DATA": str(tmp_path / "data"),
        **env_ports,
    }
    env.pop("STEPGATE_API_KEYS_FILE", None)
    return subprocess.run(
        [str(ROOT / "scripts" / "run")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("taken", PORTS)
def test_run_with_a_taken_port_fails_at_once_naming_it_and_its_holder(
    taken: str, listener: socket.socket, tmp_path: Path
) -> None:
    """A port held by another process stops `make run` before anything starts: the message names
    the port, its setting and the holder's pid; no banner, no data folder, no new key."""
    port = listener.getsockname()[1]
    ports = dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True))
    ports[taken] = str(port)
    started = time.monotonic()
    done = run_script(ports, tmp_path)
    took = time.monotonic() - started
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert took < AT_ONCE_S
    assert f"port {port} ({taken}) is taken by" in done.stderr
    if shutil.which("ss"):
        assert f"pid {os.getpid()} (" in done.stderr and f"127.0.0.1:{port}" in done.stderr
    assert f"set {taken} to a free port" in done.stderr
    assert "running" not in done.stdout and "Admin key" not in done.stdout
    assert not (tmp_path / "data").exists()


def test_run_refuses_two_settings_on_one_port_and_a_port_that_is_not_one(tmp_path: Path) -> None:
    """Two settings naming the same port, or a value that is no port, are refused before anything
    starts, each named."""
    ports = dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True))
    ports["STEPGATE_API_PORT"] = ports["TEMPORAL_UI_PORT"]
    ports["TEMPORAL_HTTP_PORT"] = "72430"
    done = run_script(ports, tmp_path)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "STEPGATE_API_PORT and TEMPORAL_UI_PORT are both port" in done.stderr
    assert "TEMPORAL_HTTP_PORT=72430 is not a port (1-65535)" in done.stderr
    assert not (tmp_path / "data").exists()


def readme_banner() -> list[str]:
    """The banner lines the README shows after `make run`."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Two commands", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    lines = block.splitlines()
    first = next(i for i, line in enumerate(lines) if "Stepgate is running" in line)
    return [line.rstrip() for line in lines[first:] if line.startswith("    ") or "running" in line]


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the child, as a terminal gives it: a suite started in the
    background (`cmd &`, nohup) hands its children SIGINT ignored, and bash cannot trap a signal
    that was ignored when it started, so the Ctrl-C below would never reach scripts/run's trap."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.server  # starts scripts/run: the Temporal dev server, `python worker.py`, `python -m api`
def test_run_on_ports_from_the_environment_prints_the_readmes_banner_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    """A real `make run` (scripts/run) on ports chosen by environment variables: its banner is the
    README's with those ports in place of the defaults, each URL it shows answers there, and
    Ctrl-C stops every process it started."""
    ports = dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True))
    stub = tmp_path / "bin"
    stub.mkdir()
    # The package is installed already (the test runs from it): `make -q install` says so.
    (stub / "make").write_text("#!/bin/sh\nexit 0\n")
    (stub / "make").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}",
        "STEPGATE_DATA": str(tmp_path / "data"),
        "TEMPORAL_STORE": "memory",
        "STEPGATE_LOG_LEVEL": "WARNING",
        **ports,
    }
    for name in ("STEPGATE_API_KEYS_FILE", "STEPGATE_UI_URL", "STEPGATE_PUBLIC_URL"):
        env.pop(name, None)
    out = tmp_path / "out.log"
    with out.open("w") as stdout, (tmp_path / "err.log").open("w") as stderr:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run")],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )
    try:
        deadline = time.monotonic() + 180
        while "Admin key" not in out.read_text():
            assert proc.poll() is None, (tmp_path / "err.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no banner within 180 s"
            time.sleep(0.2)
        printed = [line.rstrip() for line in out.read_text().splitlines() if line.strip()]
        printed = printed[next(i for i, p in enumerate(printed) if "Stepgate is running" in p) :]
        defaults = {
            "8000": "STEPGATE_API_PORT",
            "7233": "TEMPORAL_PORT",
            "8233": "TEMPORAL_UI_PORT",
        }
        defaults["7243"] = "TEMPORAL_HTTP_PORT"
        shown = readme_banner()
        assert len(printed) == len(shown), (printed, shown)
        for want, got in zip(shown, printed, strict=True):
            label = want.split(":", 1)[0]
            if label.strip() in ("Data", "Admin key"):
                assert got.split(":", 1)[0] == label
                continue
            for default, name in defaults.items():
                want = want.replace(f":{default}", f":{ports[name]}")
            assert got == want
        tree = psutil.Process(proc.pid).children(recursive=True)
        api = f"http://localhost:{ports['STEPGATE_API_PORT']}"
        ui = f"http://localhost:{ports['TEMPORAL_UI_PORT']}"
        for url in (f"{api}/ui", f"{api}/docs", ui):
            assert httpx.get(url, timeout=10, follow_redirects=True).status_code == 200, url
        proc.send_signal(signal.SIGINT)
        # Seconds: the worker drains and the server stops. Never past scripts/run's own bound (45 s
        # for each of its three children before it kills one).
        assert proc.wait(timeout=150) == 130
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert alive == [], [(p.pid, p.name()) for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
