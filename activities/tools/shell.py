"""`shell.run`: run an allow-listed program (no shell) in the run's workspace, sandboxed and
bounded (see `_sandbox`), with bounded output and a clean kill."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from contextlib import suppress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.bindings import SECRET_DESTINATION_REFUSED
from activities.context import ToolContext
from activities.errors import fatal, transient
from activities.registry import sends_to_fields, tool
from activities.tools._masking import masked_failures
from activities.tools._sandbox import Sandbox, plan_launch, sweep
from activities.tools._shell_io import Tail, feed, slack
from activities.tools._shell_policy import (
    FIXED_PATH,
    STEP_ENV_DOC,
    RunAs,
    check_step_env,
    child_env,
    prepare_workspace,
    run_as,
)

_KILL_GRACE_S = 2.0
_STDERR_IN_ERROR = 2_000
# Why a program ended by these signals: the limit that sent them.
_LIMIT_SIGNALS = {
    signal.SIGXCPU: "the CPU limit (STEPGATE_SHELL_MAX_CPU_S)",
    signal.SIGXFSZ: "the file size limit (STEPGATE_SHELL_MAX_FILE_BYTES)",
}


class ShellRunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(
        min_length=1,
        max_length=4_096,
        description="Program and arguments; run directly, never through a shell. Arguments are "
        "visible to other processes on the worker: pass secrets through stdin or env instead.",
    )
    cwd: str | None = Field(
        None,
        max_length=4_096,
        description="Working directory inside the run's workspace (the run's artifact folder), "
        "relative to it; the workspace itself when omitted.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description=f"Variables added to a fixed environment; a step may set {STEP_ENV_DOC}.",
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
        if any("\x00" in arg for arg in value):
            raise ValueError("arguments must not contain NUL characters")
        return value

    @field_validator("cwd")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("env")
    @classmethod
    def _env_allowed(cls, value: dict[str, str]) -> dict[str, str]:
        return check_step_env(value)


class ShellRunOutput(BaseModel):
    exit_code: int = Field(
        description="The exit code; ended by signal N: -N without a sandbox, 128+N under bwrap."
    )
    stdout: str = Field(description="Standard output (its tail when truncated).")
    stderr: str = Field(description="Standard error (its tail when truncated).")
    stdout_truncated: bool = Field(description="True when stdout was longer than the bound.")
    stderr_truncated: bool = Field(description="True when stderr was longer than the bound.")
    duration_ms: int = Field(description="Wall time in milliseconds.")
    sandbox: Sandbox = Field(
        description="`bwrap` when the program ran in the sandbox, else `none`."
    )


def _resolve(argv0: str, cwd: Path) -> str | None:
    """The absolute path the child would execute, looked up on the child's fixed PATH."""
    if "/" in argv0:
        full = os.path.normpath(os.path.join(cwd, argv0))
        return full if os.path.isfile(full) and os.access(full, os.X_OK) else None
    found = shutil.which(argv0, path=FIXED_PATH)
    return os.path.normpath(os.path.abspath(found)) if found else None


def _allowed(program: str, allow: list[str]) -> bool:
    """A full-path entry must match exactly; a bare name must match the program the fixed PATH
    finds, so `/tmp/x/git` cannot pass for an allowed `git`."""
    for entry in allow:
        if "/" in entry:
            if os.path.normpath(entry) == program:
                return True
        elif os.path.basename(program) == entry:
            found = shutil.which(entry, path=FIXED_PATH)
            if found and os.path.normpath(os.path.abspath(found)) == program:
                return True
    return False


def _check_runnable(argv0: str, cwd: Path, allow: list[str]) -> str:
    program = _resolve(argv0, cwd)
    if program is None:
        raise fatal(f"executable {argv0!r} was not found (or is not executable)", "ShellNotFound")
    if not _allowed(program, allow):
        raise fatal(
            f"{argv0!r} ({program}) is not allowed on this worker; add it to STEPGATE_SHELL_ALLOW",
            "ShellNotAllowed",
        )
    return program


def _prepare(inp: ShellRunInput, ctx: ToolContext, who: RunAs) -> tuple[Path, Path, str]:
    """The run's workspace, the working directory in it, and the allowed program to run."""
    settings = ctx.settings
    workspace, cwd = prepare_workspace(settings.artifact_root, ctx.run_key, inp.cwd, who)
    return workspace, cwd, _check_runnable(inp.argv[0], cwd, settings.stepgate_shell_allow)


def _signal_group(proc: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    # The group may already be gone (or its id reused by someone else's process): nothing to do.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole process group, give it a moment, then SIGKILL whatever is left.

    Under bwrap the group holds bwrap itself; its death takes the sandbox's pid namespace
    (every process the program started) with it."""
    _signal_group(proc, signal.SIGTERM)
    with suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)
    _signal_group(proc, signal.SIGKILL)
    # wait() also waits for the pipes to close; a descendant that left the group could hold
    # them open forever, so the wait is bounded (the program itself is reaped either way).
    with suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)


def _limit_hint(code: int, sandbox: Sandbox) -> str:
    number = -code if code < 0 else code - 128 if sandbox == "bwrap" and code > 128 else 0
    reason = next((r for s, r in _LIMIT_SIGNALS.items() if s == number), None)
    return f" (stopped by {reason})" if reason else ""


# A program decides where what it holds goes from all it is given; only limits may change freely.
@tool(
    "shell.run",
    "1.0.0",
    heartbeat=True,
    risk="high",
    sends_to=sends_to_fields("argv", "cwd", "env", "stdin"),
)
async def shell_run(inp: ShellRunInput, ctx: ToolContext) -> ShellRunOutput:
    """Run an allow-listed program in the run's workspace; its output tails, exit code and duration."""
    with masked_failures(ctx.secret_values):
        return await _run(inp, ctx)


async def _run(inp: ShellRunInput, ctx: ToolContext) -> ShellRunOutput:
    settings = ctx.settings
    if not settings.stepgate_shell_allow:
        raise fatal(
            "shell.run is disabled on this worker; enable programs with "
            "STEPGATE_SHELL_ALLOW=name1,/full/path2 (comma-separated)",
            "ShellDisabled",
        )
    refusal = ctx.send_rules.refuse_argv(inp.argv) if ctx.send_rules is not None else None
    if refusal is not None:
        raise fatal(refusal, SECRET_DESTINATION_REFUSED)
    who = run_as(settings)
    workspace, cwd, program = await asyncio.to_thread(_prepare, inp, ctx, who)
    launch = await plan_launch(
        settings, who, program, inp.argv[1:], workspace, cwd, child_env(inp.env, workspace)
    )
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *launch.argv,
            cwd=cwd,
            env=launch.env,
            stdin=asyncio.subprocess.PIPE if inp.stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session and process group, so a kill reaches every descendant.
            start_new_session=True,
            user=who.uid if who.switch else None,
            group=who.gid if who.switch else None,
            extra_groups=[] if who.switch else None,
            umask=0o077,
        )
    except OSError as err:
        raise fatal(f"could not start {inp.argv[0]!r}: {err}", "ShellStartFailed") from None
    # A secret's length more than shown, so masking happens before the cut (see Tail.shown).
    margin = slack(ctx.secret_values)
    stdout = Tail(inp.max_output_bytes + margin)
    stderr = Tail(inp.max_output_bytes + margin)
    try:
        async with asyncio.timeout(inp.timeout_s):
            await asyncio.gather(
                feed(proc, inp.stdin), stdout.drain(proc.stdout), stderr.drain(proc.stderr)
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
        # Descendants that outlived a finished program are still in its group: end them too,
        # and (without a sandbox) those that left the group.
        _signal_group(proc, signal.SIGKILL)
        if launch.sweep_token is not None:
            await asyncio.shield(asyncio.to_thread(sweep, launch.sweep_token))
    out, out_cut = stdout.shown(inp.max_output_bytes, ctx.secret_values)
    errors, errors_cut = stderr.shown(inp.max_output_bytes, ctx.secret_values)
    allowed = (
        inp.allow_nonzero is True
        or code == 0
        or (isinstance(inp.allow_nonzero, list) and code in inp.allow_nonzero)
    )
    if not allowed:
        tail = errors[-_STDERR_IN_ERROR:].strip()
        raise fatal(
            f"{inp.argv[0]!r} exited with code {code}{_limit_hint(code, launch.sandbox)}"
            + (f": {tail}" if tail else ""),
            "ShellNonZeroExit",
            exit_code=code,
        )
    return ShellRunOutput(
        exit_code=code,
        stdout=out,
        stderr=errors,
        stdout_truncated=out_cut,
        stderr_truncated=errors_cut,
        duration_ms=int((time.monotonic() - started) * 1000),
        sandbox=launch.sandbox,
    )
