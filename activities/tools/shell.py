"""`shell.run`: run an allow-listed program (no shell) with bounded output and a clean kill."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from contextlib import suppress

from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.context import ToolContext
from activities.errors import fatal, transient
from activities.registry import tool
from activities.secrets import mask_text

# Variables a program commonly needs; nothing else of the worker's environment (its secrets) leaks.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_KILL_GRACE_S = 2.0
_CHUNK = 65_536
_STDERR_IN_ERROR = 2_000


class ShellRunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(
        min_length=1, description="Program and arguments; run directly, never through a shell."
    )
    cwd: str | None = Field(None, description="Working directory (the worker's when omitted).")
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables added to a minimal environment."
    )
    stdin: str | None = Field(None, description="Text written to the program's standard input.")
    timeout_s: float = Field(300.0, gt=0, le=86_400, description="Kill the program after this.")
    allow_nonzero: bool | list[int] = Field(
        False, description="Exit codes besides 0 that count as success; true allows any."
    )
    max_output_bytes: int = Field(
        65_536,
        ge=1,
        le=16 * 1024 * 1024,
        description="Keep at most the last this-many bytes of stdout and of stderr.",
    )

    @field_validator("argv")
    @classmethod
    def _program_named(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("argv[0] must name a program")
        return value


class ShellRunOutput(BaseModel):
    exit_code: int = Field(description="The exit code; negative when ended by a signal.")
    stdout: str = Field(description="Standard output (its tail when truncated).")
    stderr: str = Field(description="Standard error (its tail when truncated).")
    stdout_truncated: bool = Field(description="True when stdout was longer than the bound.")
    stderr_truncated: bool = Field(description="True when stderr was longer than the bound.")
    duration_ms: int = Field(description="Wall time in milliseconds.")


class _Tail:
    """Keeps only the last `limit` bytes of a stream, however long the stream is."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            self.data += chunk
            if len(self.data) > self.limit:
                del self.data[: len(self.data) - self.limit]
                self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.update(extra)
    return env


def _resolve(argv0: str, cwd: str | None, path: str) -> str | None:
    """The absolute path the child would execute, looked up on the child's own PATH."""
    if "/" in argv0:
        full = os.path.normpath(os.path.join(cwd or os.getcwd(), argv0))
        return full if os.path.isfile(full) and os.access(full, os.X_OK) else None
    found = shutil.which(argv0, path=path)
    return os.path.normpath(os.path.abspath(found)) if found else None


def _allowed(program: str, allow: list[str]) -> bool:
    """A full-path entry must match exactly; a bare name must match the program the worker's own
    PATH finds, so `/tmp/x/git` or a PATH override in `env` cannot pass for an allowed `git`."""
    worker_path = os.environ.get("PATH", _DEFAULT_PATH)
    for entry in allow:
        if "/" in entry:
            if os.path.normpath(entry) == program:
                return True
        elif os.path.basename(program) == entry:
            found = shutil.which(entry, path=worker_path)
            if found and os.path.normpath(os.path.abspath(found)) == program:
                return True
    return False


def _check_runnable(inp: ShellRunInput, ctx: ToolContext, env: dict[str, str]) -> str:
    allow = ctx.settings.stepgate_shell_allow
    argv0 = inp.argv[0]
    if not allow:
        raise fatal(
            "shell.run is disabled on this worker; enable programs with "
            "STEPGATE_SHELL_ALLOW=name1,/full/path2 (comma-separated)",
            "ShellDisabled",
        )
    if inp.cwd is not None and not os.path.isdir(inp.cwd):
        raise fatal(f"working directory {inp.cwd!r} does not exist", "ShellBadCwd")
    program = _resolve(argv0, inp.cwd, env["PATH"])
    if program is None:
        raise fatal(f"executable {argv0!r} was not found (or is not executable)", "ShellNotFound")
    if not _allowed(program, allow):
        raise fatal(
            f"{argv0!r} ({program}) is not allowed on this worker; add it to STEPGATE_SHELL_ALLOW",
            "ShellNotAllowed",
        )
    return program


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    # The group may already be gone (or its id reused by someone else's process): nothing to do.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole process group, give it a moment, then SIGKILL whatever is left."""
    _signal_group(proc, signal.SIGTERM)
    with suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)
    _signal_group(proc, signal.SIGKILL)
    # wait() also waits for the pipes to close; a descendant that left the group could hold
    # them open forever, so the wait is bounded (the program itself is reaped either way).
    with suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)


@tool("shell.run", "1.0.0", heartbeat=True)
async def shell_run(inp: ShellRunInput, ctx: ToolContext) -> ShellRunOutput:
    """Run an allow-listed program without a shell; its output tails, exit code and duration."""
    env = _child_env(inp.env)
    program = _check_runnable(inp, ctx, env)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            inp.argv[0],
            *inp.argv[1:],
            executable=program,
            cwd=inp.cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if inp.stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session and process group, so a kill reaches every descendant.
            start_new_session=True,
        )
    except OSError as err:
        raise fatal(f"could not start {inp.argv[0]!r}: {err}", "ShellStartFailed") from None
    stdout, stderr = _Tail(inp.max_output_bytes), _Tail(inp.max_output_bytes)
    try:
        async with asyncio.timeout(inp.timeout_s):
            await asyncio.gather(
                _feed(proc, inp.stdin), stdout.drain(proc.stdout), stderr.drain(proc.stderr)
            )
            code = await proc.wait()
    except TimeoutError:
        await _kill_group(proc)
        raise transient(
            f"{inp.argv[0]!r} ran longer than {inp.timeout_s:g}s and was killed", "ShellTimeout"
        ) from None
    except BaseException:
        # Cancellation (or anything unexpected): never leave the program running.
        await asyncio.shield(_kill_group(proc))
        raise
    finally:
        # Descendants that outlived a finished program are still in its group: end them too.
        _signal_group(proc, signal.SIGKILL)
    allowed = (
        inp.allow_nonzero is True
        or code == 0
        or (isinstance(inp.allow_nonzero, list) and code in inp.allow_nonzero)
    )
    if not allowed:
        tail = mask_text(stderr.text()[-_STDERR_IN_ERROR:], ctx.secret_values).strip()
        raise fatal(
            f"{inp.argv[0]!r} exited with code {code}" + (f": {tail}" if tail else ""),
            "ShellNonZeroExit",
            exit_code=code,
        )
    return ShellRunOutput(
        exit_code=code,
        stdout=stdout.text(),
        stderr=stderr.text(),
        stdout_truncated=stdout.truncated,
        stderr_truncated=stderr.truncated,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def _feed(proc: asyncio.subprocess.Process, text: str | None) -> None:
    if text is None or proc.stdin is None:
        return
    # A program that exits without reading its input is not an error of ours.
    with suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(text.encode())
        await proc.stdin.drain()
    proc.stdin.close()
