"""The attacks reported against shell.run, replayed in each sandbox mode that works here."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities import default_registry
from activities.artifacts import run_dir
from activities.runtime import ToolActivities
from activities.tools import _sandbox
from tests.shell.helpers import PY, shell_settings
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, json_reply

MakeActs = Callable[..., ToolActivities]

# The reported library: when loaded, it records that it ran, what its parent's environment
# holds (the worker's, where the secrets are) and its own environment.
PRELOAD_C = r"""
#include <stdio.h>
#include <unistd.h>
extern char **environ;
__attribute__((constructor)) static void grab(void) {
    FILE *out = fopen("preload-ran.txt", "a");
    if (!out) return;
    fprintf(out, "ran in %d\n", getpid());
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", getppid());
    FILE *in = fopen(path, "r");
    if (in) {
        int c;
        while ((c = fgetc(in)) != EOF) fputc(c ? c : '\n', out);
        fclose(in);
    }
    for (char **e = environ; *e; e++) fprintf(out, "%s\n", *e);
    fclose(out);
}
"""
SECRET = "tok-7c1f0e9a2b4d"


def py(code: str, *args: str, **more: object) -> dict[str, object]:
    return {"argv": [PY, "-c", code, *args], **more}


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def preload_library(tmp_path: Path) -> Path:
    """The attacker's shared library, built with gcc, and shown to work when it is loaded."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build the LD_PRELOAD test library")
    source, library = tmp_path / "grab.c", tmp_path / "grab.so"
    source.write_text(PRELOAD_C)
    subprocess.run([gcc, "-shared", "-fPIC", "-o", library, source], check=True)
    # Control: loaded the way the attack loaded it, it runs and reads the parent's secrets.
    control = tmp_path / "control"
    control.mkdir()
    env = {"LD_PRELOAD": str(library), "STEPGATE_SECRET_TOKEN": SECRET, "PATH": "/usr/bin:/bin"}
    subprocess.run(["sh", "-c", "echo harmless"], env=env, cwd=control, check=True)
    assert SECRET in (control / "preload-ran.txt").read_text()
    return library


async def test_run_refuses_ld_preload_when_library_was_dropped_as_artifact(
    shell_acts: MakeActs, preload_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported attack: a library written with artifact.write and named in LD_PRELOAD is
    refused by name and never runs, and no secret reaches the step's output."""
    monkeypatch.setenv("STEPGATE_SECRET_TOKEN", SECRET)
    acts = shell_acts()
    workflow_id = f"attack-{uuid.uuid4().hex[:8]}"
    blob = base64.b64encode(preload_library.read_bytes()).decode()
    write = {"name": "grab.so", "content": blob, "encoding": "base64"}
    await acts.execute(make_call("artifact.write", write, workflow_id=workflow_id))
    workspace = run_dir(acts.settings.artifact_root.resolve(), workflow_id)
    attack = {"argv": ["echo", "harmless"], "env": {"LD_PRELOAD": str(workspace / "grab.so")}}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", attack, workflow_id=workflow_id))
    assert err.value.type == "InvalidToolInput" and err.value.non_retryable is True
    assert "variable 'LD_PRELOAD' is not allowed" in err.value.message
    assert not (workspace / "preload-ran.txt").exists()


async def test_run_drops_worker_ld_preload_when_worker_has_one(
    shell_acts: MakeActs, preload_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library in the worker's own LD_PRELOAD does not reach the program or the launchers."""
    monkeypatch.setenv("STEPGATE_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("LD_PRELOAD", str(preload_library))
    acts = shell_acts()
    call = make_call("shell.run", {"argv": ["echo", "harmless"]})
    result = await acts.execute(call)
    monkeypatch.delenv("LD_PRELOAD")
    assert result.output["stdout"] == "harmless\n"
    workspace = run_dir(acts.settings.artifact_root.resolve(), call.workflow_id)
    assert not (workspace / "preload-ran.txt").exists()


async def test_run_cannot_read_worker_environment_when_program_tries(
    shell_acts: MakeActs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program reading the worker's /proc environment (its secrets) gets nothing, and it
    never runs as root."""
    monkeypatch.setenv("STEPGATE_SECRET_TOKEN", SECRET)
    code = (
        "import json, os, sys\nseen = {}\n"
        "for pid in (sys.argv[1], str(os.getppid())):\n"
        "    try:\n        seen[pid] = open(f'/proc/{pid}/environ', 'rb').read().decode()\n"
        "    except OSError as err:\n        seen[pid] = type(err).__name__\n"
        "print(json.dumps({'uid': os.getuid(), 'seen': seen}))"
    )
    result = await shell_acts().execute(make_call("shell.run", py(code, str(os.getpid()))))
    report = json.loads(result.output["stdout"])
    assert (
        SECRET not in result.output["stdout"] and "STEPGATE_SECRET" not in result.output["stdout"]
    )
    assert report["uid"] != 0


@pytest.mark.parametrize("sandbox", ["bwrap"], indirect=True)
async def test_run_cannot_reach_network_when_sandboxed(
    shell_acts: MakeActs, server: LocalServer
) -> None:
    """Under bwrap the program has no network (not even the worker's loopback) unless the
    operator allows it; the allowed case shows the probe itself works."""
    server.route("GET", "/ping", lambda seen: json_reply({"ok": True}))
    code = (
        "import sys, urllib.request\ntry:\n"
        "    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)\n"
        "except OSError as err:\n    print('unreachable', type(err).__name__)\n"
    )
    blocked = await shell_acts().execute(make_call("shell.run", py(code, server.url("/ping"))))
    assert blocked.output["stdout"].startswith("unreachable") and server.seen == []
    allowed = shell_acts(stepgate_shell_network=True)
    opened = await allowed.execute(make_call("shell.run", py(code, server.url("/ping"))))
    assert opened.output["stdout"] == "200\n" and len(server.seen) == 1


async def test_run_stops_program_when_cpu_limit_is_reached(shell_acts: MakeActs) -> None:
    """A program spinning past STEPGATE_SHELL_MAX_CPU_S is stopped, and the failure says why."""
    acts = shell_acts(stepgate_shell_max_cpu_s=1)
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("shell.run", py("while True: pass", timeout_s=60)))
    assert err.value.type == "ShellNonZeroExit"
    assert "the CPU limit (STEPGATE_SHELL_MAX_CPU_S)" in err.value.message


async def test_run_puts_its_programs_at_the_lowest_priority(shell_acts: MakeActs) -> None:
    """A program and what it starts run at niceness 19, below the worker (0): a busy step cannot
    starve the worker's heartbeats."""
    code = "import os, subprocess; print(os.nice(0), subprocess.check_output(['nice']).decode())"
    result = await shell_acts().execute(make_call("shell.run", py(code)))
    assert result.output["stdout"].split() == [str(_sandbox.NICENESS)] * 2
    assert _sandbox.NICENESS == 19


@pytest.mark.parametrize(
    ("setting", "value", "code", "expected"),
    [
        (
            "stepgate_shell_max_file_bytes",
            1024**2,
            "open('big', 'wb').write(b'0' * 2 * 1024**2)",
            "EFBIG",
        ),
        (
            "stepgate_shell_max_memory_bytes",
            256 * 1024**2,
            "bytearray(512 * 1024**2)",
            "MemoryError",
        ),
        (
            "stepgate_shell_max_open_files",
            16,
            "[open('/dev/null') for _ in range(64)]",
            "EMFILE",
        ),
        (
            "stepgate_shell_max_procs",
            8,
            "import subprocess as s; [s.Popen(['sleep', '30'], stdout=s.DEVNULL, stderr=s.DEVNULL)"
            " for _ in range(32)]",
            "EAGAIN",
        ),
    ],
)
async def test_run_refuses_resource_when_limit_is_reached(
    shell_acts: MakeActs, setting: str, value: int, code: str, expected: str
) -> None:
    """Each resource limit holds: the program's request past it fails inside the program."""
    wrapped = (
        "import errno\ntry:\n"
        f"    {code}\n    print('no limit')\n"
        "except MemoryError:\n    print('MemoryError')\n"
        "except OSError as err:\n    print(errno.errorcode.get(err.errno, err.errno))\n"
    )
    acts = shell_acts(**{setting: value})
    call = make_call("shell.run", py(wrapped, allow_nonzero=True))
    result = await acts.execute(call)
    assert result.output["stdout"].strip() == expected


async def test_run_refuses_when_bwrap_is_required_but_missing(
    shell_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STEPGATE_SHELL_SANDBOX=bwrap on a worker without bubblewrap fails clearly, naming the
    package; `auto` runs the program without the sandbox and says so in the output."""
    tools = shell_root / "bin-without-bwrap"
    tools.mkdir()
    for name in ("nice", "prlimit", "setpriv", "true"):
        found = shutil.which(name, path="/usr/bin:/bin")
        assert found is not None
        (tools / name).symlink_to(found)
    monkeypatch.setattr(_sandbox, "FIXED_PATH", str(tools))
    registry = default_registry(entry_points=False)
    required = ToolActivities(registry, shell_settings(shell_root, "bwrap"))
    with pytest.raises(ApplicationError) as err:
        await required.execute(make_call("shell.run", {"argv": ["echo", "hi"]}))
    assert err.value.type == "ShellSandboxUnavailable" and err.value.non_retryable is True
    assert "STEPGATE_SHELL_SANDBOX=bwrap" in err.value.message and "bubblewrap" in err.value.message
    auto = ToolActivities(registry, shell_settings(shell_root, "auto"))
    result = await auto.execute(make_call("shell.run", {"argv": ["echo", "hi"]}))
    assert (result.output["stdout"], result.output["sandbox"]) == ("hi\n", "none")
    for acts in (required, auto):
        await acts.http.aclose()
