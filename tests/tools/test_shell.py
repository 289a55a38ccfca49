"""shell.run against real subprocesses."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
from tests.tools.conftest import make_call
from tests.tools.polling import process_gone, read_pids, wait_until

PY = sys.executable

# Writes its pid (and a child's, which it starts in the same process group) and then waits.
# The file is renamed into place so a reader never sees half of it.
SLEEPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\\n{child.pid}\\n")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""


async def all_gone(pids: list[int]) -> None:
    await wait_until(lambda: all(process_gone(p) for p in pids), f"processes {pids} to exit")


def py(code: str, *args: str, **more: object) -> dict[str, object]:
    return {"argv": [PY, "-c", code, *args], **more}


async def test_run_returns_output_when_program_is_allowed(acts: ToolActivities) -> None:
    """An allowed program's stdout, stderr and exit code come back."""
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    result = await acts.execute(make_call("shell.run", py(code)))
    out = result.output
    assert (out["exit_code"], out["stdout"], out["stderr"]) == (0, "out\n", "err\n")
    assert out["stdout_truncated"] is False and out["duration_ms"] >= 0


async def test_run_passes_stdin_cwd_and_env_when_given(
    acts: ToolActivities, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdin, cwd and env reach the program; the worker's own variables do not."""
    monkeypatch.setenv("STEPGATE_SECRET_WORKER_ONLY", "hidden-from-children")
    code = (
        "import os, sys; data = sys.stdin.read();"
        "print(data.upper(), os.getcwd(), os.environ['GREETING'],"
        " 'STEPGATE_SECRET_WORKER_ONLY' in os.environ)"
    )
    args = py(code, stdin="hello", cwd=str(tmp_path), env={"GREETING": "hi"})
    result = await acts.execute(make_call("shell.run", args))
    assert result.output["stdout"].split() == ["HELLO", str(tmp_path), "hi", "False"]


async def test_run_refuses_when_allowlist_is_empty(
    make_acts: Callable[..., ToolActivities],
) -> None:
    """With no STEPGATE_SHELL_ALLOW the tool is off and the error says how to turn it on."""
    acts = make_acts(stepgate_shell_allow=[])
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", py("print(1)")))
    assert err.value.non_retryable is True and "STEPGATE_SHELL_ALLOW" in err.value.message


async def test_run_refuses_when_program_is_not_allowed(acts: ToolActivities) -> None:
    """A program missing from the allowlist is refused, naming the setting."""
    true = shutil.which("true")
    assert true is not None
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", {"argv": [true]}))
    assert err.value.type == "ShellNotAllowed" and err.value.non_retryable is True
    assert "STEPGATE_SHELL_ALLOW" in err.value.message


async def test_run_allows_bare_name_when_path_lookup_matches(
    make_acts: Callable[..., ToolActivities],
) -> None:
    """A bare allowlist entry admits that program by name or by the full path PATH gives."""
    acts = make_acts(stepgate_shell_allow=["echo"])
    echo = shutil.which("echo")
    assert echo is not None
    for argv0 in ("echo", echo):
        result = await acts.execute(make_call("shell.run", {"argv": [argv0, "hi"]}))
        assert result.output["stdout"] == "hi\n"


async def test_run_refuses_lookalike_when_only_basename_matches(
    make_acts: Callable[..., ToolActivities], tmp_path: Path
) -> None:
    """Another file named like an allowed program, by path or via a PATH override, is refused."""
    fake = tmp_path / "echo"
    fake.write_text("#!/bin/sh\necho pwned\n")
    fake.chmod(0o755)
    acts = make_acts(stepgate_shell_allow=["echo"])
    for args in ({"argv": [str(fake)]}, {"argv": ["echo"], "env": {"PATH": str(tmp_path)}}):
        with pytest.raises(ApplicationError) as err:
            await acts.execute(make_call("shell.run", args))
        assert err.value.type == "ShellNotAllowed"


async def test_run_fails_fatally_when_executable_is_missing(
    make_acts: Callable[..., ToolActivities],
) -> None:
    """A program that does not exist is a non-retryable error naming it."""
    acts = make_acts(stepgate_shell_allow=["no-such-program-xyz"])
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", {"argv": ["no-such-program-xyz"]}))
    assert err.value.non_retryable is True and err.value.type == "ShellNotFound"
    assert "no-such-program-xyz" in err.value.message


async def test_run_fails_fatally_when_exit_is_nonzero(
    acts: ToolActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-zero exit fails with the code and the stderr tail, secrets masked."""
    monkeypatch.setenv("STEPGATE_SECRET_DB_PASSWORD", "hunter2-pass")
    code = "import sys; print('bad', sys.argv[1], file=sys.stderr); sys.exit(3)"
    args = py(code, "${secret.DB_PASSWORD}")
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", args))
    assert err.value.non_retryable is True and err.value.type == "ShellNonZeroExit"
    assert "exited with code 3" in err.value.message and "bad ***" in err.value.message
    assert "hunter2-pass" not in err.value.message


@pytest.mark.parametrize("allow", [True, [3]])
async def test_run_succeeds_when_nonzero_exit_is_allowed(
    acts: ToolActivities, allow: bool | list[int]
) -> None:
    """allow_nonzero (true, or a list holding the code) turns a non-zero exit into a result."""
    result = await acts.execute(
        make_call("shell.run", py("raise SystemExit(3)", allow_nonzero=allow))
    )
    assert result.output["exit_code"] == 3


async def test_run_keeps_tail_when_output_exceeds_limit(acts: ToolActivities) -> None:
    """Output beyond max_output_bytes keeps its last bytes and is flagged."""
    code = "import sys; sys.stdout.write('a' * 300000 + 'END')"
    result = await acts.execute(make_call("shell.run", py(code, max_output_bytes=1000)))
    out = result.output
    assert out["stdout_truncated"] is True
    assert len(out["stdout"]) == 1000 and out["stdout"].endswith("aEND")


async def test_run_kills_process_group_when_timeout_expires(
    acts: ToolActivities, tmp_path: Path
) -> None:
    """A timeout kills the program and its children, then fails retryably."""
    pids = tmp_path / "pids"
    args = py(SLEEPER, str(pids), timeout_s=1.5)
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", args))
    assert err.value.non_retryable is False and err.value.type == "ShellTimeout"
    await all_gone(await read_pids(pids, 2))


async def test_run_kills_process_group_when_cancelled(acts: ToolActivities, tmp_path: Path) -> None:
    """Cancelling the call kills the program and its children and re-raises CancelledError."""
    pids = tmp_path / "pids"
    task = asyncio.create_task(acts.execute(make_call("shell.run", py(SLEEPER, str(pids)))))
    found = await read_pids(pids, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await all_gone(found)
    assert os.getpid() not in found
