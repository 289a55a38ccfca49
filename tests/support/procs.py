"""Child processes of the bench (server, workers, API): started with logs to files, always stopped.

Children get their own session, so Ctrl-C reaches only the bench, which then stops them in
reverse start order: workers drain before the server they talk to goes away.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil

STOP_GRACE_S = 10.0
POLL_S = 0.05
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def _die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """What runs in the child before exec: if the bench is killed outright (SIGKILL, OOM) and
    never reaches its cleanup, the kernel sends the child `sig` instead of leaving it orphaned.
    (Popen switches the user before this runs; a switch afterwards would clear the setting.)"""

    def arm() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return arm


class StartupFailed(RuntimeError):
    """A child died or did not become ready in time; the message carries its log tail."""


def free_port() -> int:
    """A loopback port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    # What asks it to stop cleanly: PostgreSQL takes SIGINT (SIGTERM waits for every client).
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        """This child and every process under it (a script's server, say); [] once it is gone."""
        try:
            top = psutil.Process(self.pid)
            return [top, *top.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU this child and the processes under it have used so far."""
        used = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
            except psutil.Error:  # exited between listing and reading
                continue
            used += times.user + times.system
        return used

    def rss_bytes(self) -> int:
        """Resident memory of this child and the processes under it."""
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL the whole session; a process under it
        that outlived it (a script's server, its parent gone first) is killed too."""
        below = self.tree()[1:]
        if self.alive():
            self._stop(grace_s)
        for proc in below:
            try:
                proc.kill()  # psutil sends nothing to a pid since reused by another process
            except psutil.Error:
                continue

    def _stop(self, grace_s: float) -> None:
        self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.popen.wait(timeout=grace_s)


@dataclass
class Processes:
    """Owns every child; leaving the `with` block stops all that are still running."""

    logdir: Path
    children: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        *,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Child:
        """`argv` in a session of its own, its output appended to `<logdir>/<name>.log` (a
        restarted child keeps its earlier lines); as `user` (and only that user's group) when
        given; `stop_signal` asks it to stop, also when the bench dies."""
        log = self.logdir / f"{name}.log"
        uid = gid = None
        groups: list[int] | None = None
        if user is not None:
            entry = pwd.getpwnam(user)
            uid, gid, groups = entry.pw_uid, entry.pw_gid, []
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(stop_signal) if sys.platform == "linux" else None,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        child = Child(name, popen, log, stop_signal)
        self.children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        # Reverse order, and keep going when one stop fails, so nothing is left behind.
        errors: list[Exception] = []
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as err:
                errors.append(err)
        self.children.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


async def wait_for(
    child: Child, ready: Callable[[], Awaitable[bool]], timeout_s: float, what: str
) -> None:
    """Poll `ready` until true; fail early if the child exits, late if it never gets there."""
    deadline = time.monotonic() + timeout_s
    while not await ready():
        if not child.alive():
            raise StartupFailed(f"{child.name} exited before {what}:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise StartupFailed(f"{child.name}: no {what} within {timeout_s:.0f}s:\n{child.tail()}")
        await asyncio.sleep(POLL_S)
