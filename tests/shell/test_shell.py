"""shell.run against real subprocesses, in each sandbox mode that works on this machine."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.artifacts import run_dir
from activities.bindings import SECRET_DESTINATION_REFUSED, SecretBinding
from activities.models import ToolCall
from activities.runtime import ToolActivities
from tests.conftest import ROOT
from tests.shell.helpers import PY, processes_with
from tests.support.util import eventually
from tests.tools.conftest import make_call

# Starts a child that sleeps, then sleeps itself; both carry the marker in their command line.
CHILD = "import time; time.sleep(60)"
SLEEPER = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "{CHILD}", sys.argv[1]])
print("started", flush=True)
time.sleep(60)
"""

MakeActs = Callable[..., ToolActivities]


def py(code: str, *args: str, **more: object) -> dict[str, object]:
    return {"argv": [PY, "-c", code, *args], **more}


async def gone(marker: str) -> None:
    await eventually(lambda: processes_with(marker) == [], what=f"processes with {marker} to exit")


async def test_run_returns_output_when_program_is_allowed(
    shell_acts: MakeActs, sandbox: str
) -> None:
    """An allowed program's stdout, stderr and exit code come back, with the sandbox used."""
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    result = await shell_acts().execute(make_call("shell.run", py(code)))
    out = result.output
    assert (out["exit_code"], out["stdout"], out["stderr"]) == (0, "out\n", "err\n")
    assert out["stdout_truncated"] is False and out["sandbox"] == sandbox


async def test_run_uses_workspace_and_clean_env_when_given_cwd_and_env(
    shell_acts: MakeActs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stdin, a cwd inside the workspace and allowed env reach the program; the worker's do not."""
    monkeypatch.setenv("STEPGATE_SECRET_WORKER_ONLY", "hidden-from-children")
    monkeypatch.setenv("PYTHONINSPECT", "1")
    acts = shell_acts()
    call = make_call("shell.run", {"argv": ["sh", "-c", "mkdir -p sub"]})
    await acts.execute(call)
    code = (
        "import json, os, sys; print(json.dumps([sys.stdin.read().upper(), os.getcwd(),"
        " os.environ['APP_GREETING'], sorted(os.environ)]))"
    )
    args = py(code, stdin="hello", cwd="sub", env={"APP_GREETING": "hi", "LC_ALL": "C.UTF-8"})
    result = await acts.execute(make_call("shell.run", args, workflow_id=call.workflow_id))
    workspace = run_dir(acts.settings.artifact_root.resolve(), call.workflow_id)
    stdin, cwd, greeting, names = json.loads(result.output["stdout"])
    assert (stdin, cwd, greeting) == ("HELLO", str(workspace / "sub"), "hi")
    assert "STEPGATE_SECRET_WORKER_ONLY" not in names and "PYTHONINSPECT" not in names
    assert {"PATH", "HOME", "LANG", "APP_GREETING", "LC_ALL"} <= set(names)


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "PYTHONPATH",
        "PATH",
        "HOME",
        "BASH_ENV",
        "GCONV_PATH",
        "app_lower",
    ],
)
async def test_run_refuses_env_variable_when_not_allowed(shell_acts: MakeActs, name: str) -> None:
    """A variable outside the documented list fails validation, naming it, without a retry."""
    with pytest.raises(ApplicationError) as err:
        await shell_acts().execute(make_call("shell.run", {"argv": ["echo"], "env": {name: "x"}}))
    assert err.value.type == "InvalidToolInput" and err.value.non_retryable is True
    assert f"variable {name!r} is not allowed" in err.value.message


@pytest.mark.parametrize(("name", "value"), [("LANG", "/tmp/evil"), ("TZ", ":/etc/passwd")])
async def test_run_refuses_env_value_when_it_names_a_path(
    shell_acts: MakeActs, name: str, value: str
) -> None:
    """Locale and zone variables may not point the C library at a file."""
    with pytest.raises(ApplicationError) as err:
        await shell_acts().execute(make_call("shell.run", {"argv": ["echo"], "env": {name: value}}))
    assert (
        err.value.type == "InvalidToolInput" and f"variable {name!r} must be" in err.value.message
    )


async def test_run_refuses_cwd_when_it_leaves_the_workspace(
    shell_acts: MakeActs, shell_root: Path
) -> None:
    """`..`, an absolute path elsewhere and a symbolic link out of the workspace are refused."""
    acts = shell_acts()
    call = make_call("shell.run", {"argv": ["sh", "-c", f"ln -s {shell_root} out"]})
    await acts.execute(call)
    for cwd in ("..", "/etc", str(shell_root), "out", "out/artifacts"):
        args = {"argv": ["echo"], "cwd": cwd}
        with pytest.raises(ApplicationError) as err:
            await acts.execute(make_call("shell.run", args, workflow_id=call.workflow_id))
        assert (
            err.value.type == "ShellBadCwd" and "outside the run's workspace" in err.value.message
        )


async def test_run_fails_to_write_when_target_is_outside_workspace(
    shell_acts: MakeActs, shell_root: Path, sandbox: str
) -> None:
    """The program writes its workspace, but nothing it writes elsewhere reaches the worker's
    file system: the system and the project are refused, and the folder around the workspace
    (under /tmp here) is either refused or, under bwrap, only the sandbox's private /tmp."""
    if sandbox == "none" and os.geteuid() != 0:
        pytest.skip("without bwrap a program runs as the worker's user and writes where it can")
    acts = shell_acts()
    project = ROOT / f"planted-{uuid.uuid4().hex}"
    beside = shell_root / "artifacts" / "planted.txt"
    code = (
        "import sys\nfor path in sys.argv[1:]:\n"
        "    try:\n        open(path, 'w').write('x'); print('wrote')\n"
        "    except OSError:\n        print('refused')\n"
    )
    argv = py(code, "inside.txt", str(project), "/usr/planted", str(beside))
    result = await acts.execute(make_call("shell.run", argv))
    assert result.output["stdout"].split()[:3] == ["wrote", "refused", "refused"]
    assert not project.exists() and not Path("/usr/planted").exists() and not beside.exists()


@pytest.mark.parametrize("sandbox", ["bwrap"], indirect=True)
async def test_run_keeps_tmp_private_when_sandboxed(shell_acts: MakeActs) -> None:
    """Under bwrap a file the program writes to /tmp never appears in the worker's /tmp."""
    name = f"/tmp/stepgate-private-{uuid.uuid4().hex}"
    result = await shell_acts().execute(
        make_call("shell.run", {"argv": ["sh", "-c", f"echo x > {name} && cat {name}"]})
    )
    assert result.output["stdout"] == "x\n" and not Path(name).exists()


async def test_run_refuses_when_allowlist_is_empty(shell_acts: MakeActs) -> None:
    """With no STEPGATE_SHELL_ALLOW the tool is off and the error says how to turn it on."""
    with pytest.raises(ApplicationError) as err:
        await shell_acts(stepgate_shell_allow=[]).execute(make_call("shell.run", py("print(1)")))
    assert err.value.non_retryable is True and "STEPGATE_SHELL_ALLOW" in err.value.message


async def test_run_refuses_when_program_is_not_allowed(shell_acts: MakeActs) -> None:
    """A program missing from the allowlist is refused, naming the setting."""
    with pytest.raises(ApplicationError) as err:
        await shell_acts().execute(make_call("shell.run", {"argv": ["ls"]}))
    assert err.value.type == "ShellNotAllowed" and err.value.non_retryable is True
    assert "STEPGATE_SHELL_ALLOW" in err.value.message


async def test_run_allows_bare_name_when_path_lookup_matches(shell_acts: MakeActs) -> None:
    """A bare allowlist entry admits that program by name or by the full path PATH gives."""
    echo = shutil.which("echo", path="/usr/local/bin:/usr/bin:/bin")
    assert echo is not None
    for argv0 in ("echo", echo):
        result = await shell_acts().execute(make_call("shell.run", {"argv": [argv0, "hi"]}))
        assert result.output["stdout"] == "hi\n"


async def test_run_refuses_lookalike_when_only_basename_matches(shell_acts: MakeActs) -> None:
    """A file in the workspace named like an allowed program is refused."""
    acts = shell_acts()
    call = make_call(
        "shell.run",
        {"argv": ["sh", "-c", "printf '#!/bin/sh\\necho pwned\\n' > echo; chmod +x echo"]},
    )
    await acts.execute(call)
    with pytest.raises(ApplicationError) as err:
        await acts.execute(
            make_call("shell.run", {"argv": ["./echo"]}, workflow_id=call.workflow_id)
        )
    assert err.value.type == "ShellNotAllowed"


async def test_run_fails_fatally_when_executable_is_missing(shell_acts: MakeActs) -> None:
    """A program that does not exist is a non-retryable error naming it."""
    acts = shell_acts(stepgate_shell_allow=["no-such-program-xyz"])
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", {"argv": ["no-such-program-xyz"]}))
    assert err.value.non_retryable is True and err.value.type == "ShellNotFound"
    assert "no-such-program-xyz" in err.value.message


async def test_run_fails_fatally_when_exit_is_nonzero(
    shell_acts: MakeActs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-zero exit fails with the code and the stderr tail, secrets masked."""
    monkeypatch.setenv("STEPGATE_SECRET_DB_PASSWORD", "hunter2-pass")
    code = "import sys; print('bad', sys.argv[1], file=sys.stderr); sys.exit(3)"
    with pytest.raises(ApplicationError) as err:
        await shell_acts().execute(make_call("shell.run", py(code, "${secret.DB_PASSWORD}")))
    assert err.value.non_retryable is True and err.value.type == "ShellNonZeroExit"
    assert "exited with code 3" in err.value.message and "bad ***" in err.value.message
    assert "hunter2-pass" not in err.value.message


@pytest.mark.parametrize("allow", [True, [3]])
async def test_run_succeeds_when_nonzero_exit_is_allowed(
    shell_acts: MakeActs, allow: bool | list[int]
) -> None:
    """allow_nonzero (true, or a list holding the code) turns a non-zero exit into a result."""
    call = make_call("shell.run", py("raise SystemExit(3)", allow_nonzero=allow))
    assert (await shell_acts().execute(call)).output["exit_code"] == 3


async def test_run_keeps_tail_when_output_exceeds_limit(shell_acts: MakeActs) -> None:
    """Output beyond max_output_bytes keeps its last bytes and is flagged."""
    code = "import sys; sys.stdout.write('a' * 300000 + 'END')"
    result = await shell_acts().execute(make_call("shell.run", py(code, max_output_bytes=1000)))
    out = result.output
    assert out["stdout_truncated"] is True
    assert len(out["stdout"]) == 1000 and out["stdout"].endswith("aEND")


async def test_run_masks_secret_when_tail_cuts_through_it(
    shell_acts: MakeActs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret the output bound cuts in half at the tail's start shows no part of itself."""
    secret = "s3cr3t-VALUE-0123456789"
    monkeypatch.setenv("STEPGATE_SECRET_CUT", secret)
    # The last 20 bytes hold the secret's last 10 characters and then 10 x's.
    code = "import sys; sys.stdout.write('a' * 5000 + sys.argv[1] + 'x' * 10)"
    call = make_call("shell.run", py(code, "${secret.CUT}", max_output_bytes=20))
    out = (await shell_acts().execute(call)).output
    assert out["stdout_truncated"] is True and out["stdout"].endswith("xxxxxxxxxx")
    assert not any(secret[i:] in out["stdout"] for i in range(len(secret) - 3))


async def test_run_kills_process_group_when_timeout_expires(shell_acts: MakeActs) -> None:
    """A timeout kills the program and its children, then fails retryably."""
    marker = f"sleeper-{uuid.uuid4().hex}"
    with pytest.raises(ApplicationError) as err:
        await shell_acts().execute(make_call("shell.run", py(SLEEPER, marker, timeout_s=1.5)))
    assert err.value.non_retryable is False and err.value.type == "ShellTimeout"
    await gone(marker)


async def test_run_kills_process_group_when_cancelled(shell_acts: MakeActs) -> None:
    """Cancelling the call kills the program and its children and re-raises CancelledError."""
    marker = f"sleeper-{uuid.uuid4().hex}"
    task = asyncio.create_task(shell_acts().execute(make_call("shell.run", py(SLEEPER, marker))))
    # The child is up once a process runs its code as an argument of its own (bwrap's command
    # line holds the marker too, before the program itself has started).
    await eventually(
        lambda: processes_with(f"\0{CHILD}\0{marker}"), what="program and child to start"
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gone(marker)
    assert os.getpid() not in processes_with(marker)


async def test_run_gives_a_bound_secret_only_to_its_argv_prefixes(
    shell_acts: MakeActs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program is given a bound secret only when its argv starts with a prefix the binding
    names (`secrets: {T: {argv: [...]}}`); a secret bound to hosts only is never given to one."""
    monkeypatch.setenv("STEPGATE_SECRET_APITOKEN", "bound-secret-value")
    args = py(
        "import os; print(len(os.environ['APP_TOKEN']))", env={"APP_TOKEN": "${secret.APITOKEN}"}
    )
    acts = shell_acts()

    def call(binding: dict[str, object]) -> ToolCall:
        return make_call(
            "shell.run", args, secret_bindings={"APITOKEN": SecretBinding.model_validate(binding)}
        )

    result = await acts.execute(call({"argv": [[PY, "-c"]]}))
    assert result.output["stdout"] == "18\n"
    for binding, why in (
        ({"argv": ["deployctl"]}, "programs started as deployctl"),
        ({"hosts": ["api.example.com"]}, "only to hosts api.example.com"),
    ):
        with pytest.raises(ApplicationError) as err:
            await acts.execute(call(binding))
        assert err.value.type == SECRET_DESTINATION_REFUSED and err.value.non_retryable
        assert why in err.value.message and "'APITOKEN'" in err.value.message


# The flags definitions/codegen/java_springboot.yaml gives java: the JVM's default reservations
# (1 GiB of class space alone) do not fit shell.run's address-space limit.
JVM_FLAGS = ["-Xmx128m", "-XX:CompressedClassSpaceSize=32m", "-XX:ReservedCodeCacheSize=32m"]


async def test_run_compiles_and_runs_java_in_each_sandbox_mode(shell_acts: MakeActs) -> None:
    """The JDK works in the sandbox too: its security properties link into
    /etc/java-<N>-openjdk, which the sandbox mounts read-only (without them javac, and java
    compiling a source file, stop with "Error loading java.security file")."""
    if shutil.which("java", path="/usr/local/bin:/usr/bin:/bin") is None:
        pytest.skip("no JDK installed")
    acts = shell_acts(stepgate_shell_allow=["java"])
    source = "class Hello { public static void main(String[] a) { System.out.println(42); } }"
    call = make_call("artifact.write", {"name": "Hello.java", "content": source})
    await acts.execute(call)
    argv = ["java", *JVM_FLAGS, "Hello.java"]
    result = await acts.execute(
        make_call("shell.run", {"argv": argv}, workflow_id=call.workflow_id)
    )
    assert (result.output["exit_code"], result.output["stdout"]) == (0, "42\n")
