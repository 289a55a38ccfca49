"""The `stepgate` terminal client, run as a real process against the served API."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

import httpx

from tests.api.conftest import KEYS
from tests.api.helpers import wait_state
from tests.conftest import ROOT
from tests.support.api import cli_env
from tests.support.api import stepgate as cli
from tests.support.util import eventually

Auth = Callable[[str], dict[str, str]]


async def test_cli_start_inbox_approve_status(
    http: httpx.AsyncClient, as_: Auth, keys: dict[str, str]
) -> None:
    """An operator starts a run, the approver sees it in `inbox` and approves it, `status` shows
    it completed; a bad key is refused with the API's message and a non-zero exit."""
    url = str(http.base_url).rstrip("/")
    code, out, err = await cli(url, KEYS["olga"][0], "start", "gated", "--input", '{"ref": "main"}')
    assert code == 0, err
    workflow_id = json.loads(out)["workflow_id"]
    await wait_state(http, workflow_id, "waiting", as_("vic"))

    async def inbox() -> str:
        return (await cli(url, keys["alice"], "inbox"))[1]

    listed = await eventually(inbox, ok=lambda text: workflow_id in text, within=30, what="inbox")
    assert "release" in listed
    code, out, err = await cli(
        url, keys["alice"], "approve", workflow_id, "release", "--comment", "ok"
    )
    assert code == 0, err
    assert json.loads(out)["state"] == "approved"
    await wait_state(http, workflow_id, "completed", as_("vic"))
    code, out, _ = await cli(url, keys["vic"], "status", workflow_id)
    assert code == 0 and json.loads(out)["state"] == "completed"
    code, _, err = await cli(url, "not-a-key", "status", workflow_id)
    assert code != 0 and "unknown API key" in err


async def test_cli_watch_follows_patches_to_the_end(
    http: httpx.AsyncClient, as_: Auth, keys: dict[str, str]
) -> None:
    """`stepgate watch` applies each patch to the status it first received: it prints the run
    waiting at its gate at once (flushed, though its output is a pipe and Python buffers it),
    then (approved meanwhile) completed, and exits 0."""
    url = str(http.base_url).rstrip("/")
    code, out, err = await cli(url, KEYS["olga"][0], "start", "gated", "--input", '{"ref": "w"}')
    assert code == 0, err
    workflow_id = json.loads(out)["workflow_id"]
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "watch", workflow_id, cwd=ROOT, env=cli_env(url, keys["vic"]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), timeout=60)).decode()
    assert " waiting " in first and first.rstrip().endswith("(waiting at release)"), first
    approved = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert approved.status_code == 200, approved.text
    rest, err_bytes = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err_bytes.decode()
    assert rest.decode().splitlines()[-1].split(" ", 1)[1] == "completed 100.0%"
