"""The terminal client writing into pipes, as a real process against the served API: a reader
that goes away (`stepgate status X | head`) ends it quietly, and `--json` gives `inbox` and
`watch` machine-readable output (a stream: one status a line)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable

import httpx

from tests.api.conftest import KEYS, StartRun
from tests.api.helpers import wait_state
from tests.conftest import ROOT
from tests.support.api import cli_env
from tests.support.api import stepgate as cli
from tests.support.util import eventually

Auth = Callable[[str], dict[str, str]]
STEPGATE = [sys.executable, "-m", "api.cli"]


async def approve(http: httpx.AsyncClient, as_: Auth, workflow_id: str) -> None:
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200, r.text


async def test_cli_into_a_closed_pipe_exits_quietly(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun
) -> None:
    """`status` into a pipe nobody reads, and `watch | head -n 1` once head has gone, exit with
    141 (as a shell shows SIGPIPE) and print nothing on stderr: no traceback, no complaint."""
    url = str(http.base_url).rstrip("/")
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    env = cli_env(url, KEYS["vic"][0])
    read, write = os.pipe()
    os.close(read)  # no reader at all: the first write fails
    try:
        proc = await asyncio.create_subprocess_exec(
            *STEPGATE, "status", workflow_id, cwd=ROOT, env=env,
            stdout=write, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert (proc.returncode, err.decode()) == (141, "")

    line = f"set -o pipefail; {' '.join(STEPGATE)} watch {workflow_id} | head -n 1"
    shell = await asyncio.create_subprocess_exec(
        "bash", "-c", line, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert shell.stdout is not None
    first = await asyncio.wait_for(shell.stdout.readline(), timeout=60)
    assert b"(waiting at release)" in first
    await approve(http, as_, workflow_id)  # the next status goes to a pipe head has closed
    rest, err = await asyncio.wait_for(shell.communicate(), timeout=60)
    assert (shell.returncode, rest, err.decode()) == (141, b"", "")


async def test_cli_json_inbox_and_watch(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, keys: dict[str, str]
) -> None:
    """`inbox --json` is the approver's items as the API has them; `watch --json` prints each
    status whole on a line of its own as it comes (waiting, then completed)."""
    url = str(http.base_url).rstrip("/")
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))

    async def inbox() -> list[dict[str, object]]:
        code, out, err = await cli(url, keys["alice"], "inbox", "--json")
        assert code == 0, err
        items: list[dict[str, object]] = json.loads(out)["items"]
        return items

    items = await eventually(inbox, ok=lambda found: found, within=30, what="inbox")
    assert [(i["workflow_id"], i["gate"]) for i in items] == [(workflow_id, "release")]

    proc = await asyncio.create_subprocess_exec(
        *STEPGATE, "watch", workflow_id, "--json", cwd=ROOT, env=cli_env(url, keys["vic"]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), timeout=60))
    assert first["workflow_id"] == workflow_id and first["state"] == "waiting"
    await approve(http, as_, workflow_id)
    rest, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    statuses = [json.loads(line) for line in rest.decode().splitlines()]
    assert statuses[-1]["state"] == "completed"
    assert [s["revision"] for s in statuses] == sorted({s["revision"] for s in statuses})
