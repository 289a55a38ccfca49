"""How shell.run starts a program: resource limits, and a bubblewrap sandbox where one works
(new namespaces, the system read-only, only the workspace writable, a private /tmp)."""

from __future__ import annotations

import asyncio
import ctypes
import glob
import os
import signal
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from temporalio.exceptions import ApplicationError

from activities.config import Settings
from activities.errors import fatal
from activities.tools._shell_policy import FIXED_PATH, RunAs, usable

log = structlog.get_logger("stepgate.shell")

Sandbox = Literal["bwrap", "none"]

# Read-only system folders a sandboxed program sees; a link (`/bin -> usr/bin`) stays a link.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The parts of /etc programs need to run; the rest (the worker's configuration, any secrets
# folder an operator put there) stays out of reach.
_ETC = (
    "alternatives ca-certificates ca-certificates.conf gai.conf group host.conf hosts "
    "ld.so.cache ld.so.conf ld.so.conf.d localtime mime.types nsswitch.conf passwd protocols "
    "resolv.conf services ssl timezone"
).split()
# Read-only configuration folders of toolchains that cannot start without them: the JDK's
# `conf/security/java.security` links into /etc/java-<N>-openjdk (javac and java fail with
# "Error loading java.security file" without it).
_ETC_GLOBS = ("java-*-openjdk",)
_PROBE_TIMEOUT_S = 10.0
_PR_SET_DUMPABLE = 4
# The lowest priority there is: sixteen busy processes at 19 weigh less than one at 0.
NICENESS = 19
_SWEEP_ROUNDS = 50
SWEEP_VAR = "STEPGATE_SHELL_RUN_TOKEN"


def _limits(settings: Settings) -> list[str]:
    cpu = settings.stepgate_shell_max_cpu_s
    return [
        # Below the worker's priority, so busy programs cannot starve its heartbeats.
        _tool("nice", "coreutils"),
        f"--adjustment={NICENESS}",
        _tool("prlimit"),
        # The soft CPU limit sends SIGXCPU (reported), the hard one a second later SIGKILL.
        f"--cpu={cpu}:{cpu + 1}",
        f"--as={settings.stepgate_shell_max_memory_bytes}",
        f"--nproc={settings.stepgate_shell_max_procs}",
        f"--nofile={settings.stepgate_shell_max_open_files}",
        f"--fsize={settings.stepgate_shell_max_file_bytes}",
        "--core=0",
        "--",
    ]


def _tool(name: str, package: str = "util-linux") -> str:
    found = next((Path(d, name) for d in FIXED_PATH.split(":") if Path(d, name).is_file()), None)
    if found is None:
        raise fatal(
            f"shell.run needs {name} (package {package}) in {FIXED_PATH}", "ShellSandboxUnavailable"
        )
    return str(found)


def _bwrap_args(settings: Settings, workspace: Path | None, cwd: Path | None) -> list[str]:
    args = [_tool("bwrap", "bubblewrap"), "--unshare-all", "--unshare-user", "--disable-userns"]
    if settings.stepgate_shell_network:
        args.append("--share-net")
    args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox"]
    for path in _SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for pattern in _ETC_GLOBS:
        for path in sorted(glob.glob(f"/etc/{pattern}")):
            args += ["--ro-bind-try", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(settings.stepgate_shell_max_file_bytes), "--tmpfs", "/tmp"]
    if workspace is not None and cwd is not None:
        args += ["--bind", str(workspace), str(workspace), "--chdir", str(cwd)]
    # The sandbox's own root (a tmpfs holding the mount points) is read-only too, so nothing
    # outside the workspace and /tmp takes a write, not even for the sandbox's lifetime.
    args += ["--remount-ro", "/"]
    return [*args, "--"]


_probed: dict[tuple[str, ...], str | None] = {}
_warned: set[str] = set()


async def _bwrap_problem(settings: Settings, who: RunAs) -> str | None:
    """None when bubblewrap runs a program here as configured; otherwise why not (cached)."""
    try:
        argv = [*_bwrap_args(settings, None, None), _tool("true", "coreutils")]
    except ApplicationError as err:
        return err.message
    key = (*argv, str(who))
    if key in _probed:
        return _probed[key]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": FIXED_PATH},
        cwd="/",
        user=who.uid if who.switch else None,
        group=who.gid if who.switch else None,
        extra_groups=[] if who.switch else None,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), _PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        problem: str | None = f"a trial run did not finish within {_PROBE_TIMEOUT_S:g}s"
    else:
        failed = stderr.decode(errors="replace").strip() or f"a trial run exited {proc.returncode}"
        problem = None if proc.returncode == 0 else failed
    _probed[key] = problem
    return problem


async def choose_sandbox(settings: Settings, who: RunAs) -> Sandbox:
    """bwrap where it works (or a clear refusal when it is required and does not), else none."""
    if settings.stepgate_shell_sandbox == "none":
        return "none"
    problem = await _bwrap_problem(settings, who)
    if problem is None:
        return "bwrap"
    if settings.stepgate_shell_sandbox == "bwrap":
        raise fatal(
            f"STEPGATE_SHELL_SANDBOX=bwrap, but bubblewrap does not work on this worker: {problem}",
            "ShellSandboxUnavailable",
        )
    if problem not in _warned:
        _warned.add(problem)
        log.warning("shell.run runs without a sandbox: bubblewrap does not work", reason=problem)
    return "none"


def _protect_worker() -> None:
    """Without a sandbox the program runs as the worker's user and could read the worker's
    environment (its secrets) from /proc/<pid>/environ; a non-dumpable process's /proc files
    belong to root."""
    if os.uname().sysname == "Linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


@dataclass(frozen=True)
class Launch:
    """How to start one program: the full argv, its whole environment, and what confines it."""

    argv: list[str]
    env: dict[str, str]
    sandbox: Sandbox
    # Without a sandbox: every process still carrying this in its environment when the run
    # ends is killed, also those that left the process group (see `sweep`).
    sweep_token: str | None


async def plan_launch(
    settings: Settings,
    who: RunAs,
    program: str,
    args: list[str],
    workspace: Path,
    cwd: Path,
    env: dict[str, str],
) -> Launch:
    """Choose the sandbox and build the argv that runs `program` inside it, under the limits."""
    sandbox = await choose_sandbox(settings, who)
    return await asyncio.to_thread(
        _plan, sandbox, settings, who, program, args, workspace, cwd, env
    )


def _plan(
    sandbox: Sandbox,
    settings: Settings,
    who: RunAs,
    program: str,
    args: list[str],
    workspace: Path,
    cwd: Path,
    env: dict[str, str],
) -> Launch:
    real = os.path.realpath(program)
    blocked = usable(Path(real), who, os.X_OK)
    if blocked is not None:
        raise fatal(
            f"{program!r} cannot be run by the user shell.run uses ({blocked} is closed to it)",
            "ShellNotAllowed",
        )
    if sandbox == "none":
        if not who.switch:
            _protect_worker()
        token = os.urandom(16).hex()
        # No new privileges (setuid programs stay unprivileged); killed if the worker dies.
        setpriv = [_tool("setpriv"), "--no-new-privs", "--pdeathsig", "KILL", "--"]
        argv = [*setpriv, *_limits(settings), program, *args]
        return Launch(argv, {**env, SWEEP_VAR: token}, "none", token)
    mounted = [os.path.realpath(p) for p in _SYSTEM if os.path.isdir(p)]
    if not any(real.startswith(m + "/") for m in mounted):
        raise fatal(
            f"{program!r} lives outside the folders the sandbox mounts ({', '.join(_SYSTEM)})",
            "ShellNotAllowed",
        )
    blocked = usable(workspace, who, os.R_OK | os.W_OK | os.X_OK)
    if blocked is not None:
        raise fatal(
            f"the run's workspace is not reachable by the user shell.run uses: {blocked} is "
            "closed to it; make STEPGATE_ARTIFACT_ROOT's folders searchable (chmod o+x)",
            "ShellBadCwd",
        )
    argv = [*_bwrap_args(settings, workspace, cwd), *_limits(settings), real, *args]
    return Launch(argv, env, "bwrap", None)


def sweep(token: str) -> int:
    """SIGKILL every process whose environment still holds `token`; how many were killed.

    Best effort: a process that replaced its environment escapes it. Rounds repeat until none
    is left, since a process may fork while the round before kills its parent."""
    needle = f"{SWEEP_VAR}={token}".encode()
    killed = 0
    for _ in range(_SWEEP_ROUNDS):
        found = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    environ = Path(entry.path, "environ").read_bytes()
                except OSError:
                    continue
                if needle in environ.split(b"\0"):
                    found.append(int(entry.name))
        if not found:
            break
        for pid in found:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        killed += len(found)
    return killed
