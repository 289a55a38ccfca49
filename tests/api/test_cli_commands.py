"""The terminal client's commands over the served API, each run as a real `stepgate` process:
list, audit, pause, resume, cancel (a run, and at a gate), modify, retry, skip, memory search,
govern with a request file, and `--json` on each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import KEYS, StartRun, copy_definitions
from tests.api.helpers import wait_state
from tests.conftest import ROOT
from tests.support.api import stepgate as cli
from tests.support.util import eventually

Auth = Callable[[str], dict[str, str]]

BROKEN = """
name: broken
version: 1
input: {type: object}
steps:
  - id: fetch
    tool: test.fail
    with: {message: upstream down}
    approval: {stage: on_failure, approvers: ["role:TEAM"]}
  - id: use
    needs: [fetch]
    tool: test.echo
    with: {got: "${steps.fetch.output}"}
output: "${steps.use.output}"
"""


@pytest.fixture
def definitions(tmp_path: Path, team: str) -> Path:
    """The API tests' catalog, plus `broken`: a step that always fails, at an on_failure gate."""
    folder = copy_definitions(tmp_path / "definitions", team)
    (folder / "broken.yaml").write_text(BROKEN.replace("TEAM", team))
    return folder


def url_of(http: httpx.AsyncClient) -> str:
    return str(http.base_url).rstrip("/")


async def ok(http: httpx.AsyncClient, key: str, *args: str) -> str:
    """The stdout of a `stepgate` command that must succeed."""
    code, out, err = await cli(url_of(http), key, *args)
    assert code == 0, f"stepgate {' '.join(args)}: {err}"
    assert err == ""
    return out


async def gate_open(http: httpx.AsyncClient, as_: Auth, workflow_id: str, gate: str) -> Any:
    async def probe() -> Any:
        return (await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))).json()

    return await eventually(
        probe,
        ok=lambda s: any(g["gate"] == gate for g in s.get("open_gates") or []),
        what=f"{gate} open",
    )


async def test_cli_list_pause_resume_cancel_and_audit(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun
) -> None:
    """`list` shows the run (as a table, and as JSON); an operator pauses, resumes and cancels
    it with reasons; `audit` prints each with its actor and reason (and `--json` the entries);
    a viewer may not cancel and is told why."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    olga, vic = KEYS["olga"][0], KEYS["vic"][0]
    listed = json.loads(await ok(http, vic, "list", "--pipeline", "gated", "--json"))
    assert [r["state"] for r in listed["items"] if r["workflow_id"] == workflow_id] == ["waiting"]
    table = await ok(http, vic, "list", "--state", "waiting", "--limit", "500")
    assert table.startswith("RUN ") and any(
        line.split()[:3] == [workflow_id, "waiting", "gated"] for line in table.splitlines()
    )
    assert await ok(http, olga, "pause", workflow_id, "--reason", "freeze") == (
        f"{workflow_id}: pause accepted\n"
    )
    await wait_state(http, workflow_id, "paused", as_("vic"))
    paused = json.loads(await ok(http, olga, "resume", workflow_id, "--json"))
    assert paused == {"workflow_id": workflow_id, "accepted": True, "action": "resume"}
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    code, _, err = await cli(url_of(http), vic, "cancel", workflow_id)
    assert code == 1 and "HTTP 403" in err and "lifecycle" in err
    await ok(http, olga, "cancel", workflow_id, "--reason", "not needed")
    await wait_state(http, workflow_id, "cancelled", as_("vic"))

    lines = (await ok(http, vic, "audit", workflow_id)).splitlines()
    assert lines[0].split() == ["SEQ", "AT", "KIND", "ACTOR", "ACTION", "GATE", "DETAIL"]
    # SEQ, the date and time, KIND, ACTOR, ACTION, ...
    actions = {line.split()[5]: line.split() for line in lines[1:] if "lifecycle" in line}
    assert {"pause", "resume", "cancel"} <= set(actions), lines
    assert actions["pause"][4] == "olga" and actions["pause"][-1] == "freeze"
    assert actions["cancel"][-2:] == ["not", "needed"]
    entries = json.loads(await ok(http, vic, "audit", workflow_id, "--json"))
    assert entries["total"] == len(entries["entries"]) == len(lines) - 1
    later = json.loads(await ok(http, vic, "--json", "audit", workflow_id, "--after", "1"))
    assert [e["seq"] for e in later["entries"]] == [e["seq"] for e in entries["entries"][1:]]


async def test_cli_modify_then_cancel_at_a_gate(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, keys: dict[str, str]
) -> None:
    """`modify` sends the patch as the approver's vote (the step runs with it, the audit keeps
    it); `cancel ID GATE` is a decision at the gate, open to its approver without `lifecycle`."""
    first = await start_run(inp={"ref": "one"})
    gate = (await gate_open(http, as_, first, "release"))["open_gates"][0]
    code, _, err = await cli(url_of(http), keys["alice"], "modify", first, "release")
    assert code == 2 and "--patch" in err
    decided = json.loads(
        await ok(
            http,
            keys["carol"],
            "modify",
            first,
            "release",
            "--patch",
            '{"seconds": 0.1}',
            "--digest",
            gate["digest"],
            "--comment",
            "shorter",
        )
    )
    assert decided["state"] == "modified" and decided["subject"]["seconds"] == 0.1
    done = await wait_state(http, first, "completed", as_("vic"))
    assert done["state"] == "completed"
    audit = json.loads(await ok(http, keys["vic"], "audit", first, "--json"))["entries"]
    modify = next(e for e in audit if e.get("action") == "modify")
    assert (modify["actor"], modify["patch"], modify["comment"]) == (
        "carol",
        {"seconds": 0.1},
        "shorter",
    )

    second = await start_run(inp={"ref": "two"})
    await gate_open(http, as_, second, "release")
    stopped = json.loads(
        await ok(http, keys["carol"], "cancel", second, "release", "--reason", "wrong ref")
    )
    assert stopped["state"] == "cancelled"
    await wait_state(http, second, "cancelled", as_("vic"))


async def test_cli_retry_and_skip_at_an_on_failure_gate(
    http: httpx.AsyncClient, as_: Auth, start_run: StartRun, keys: dict[str, str]
) -> None:
    """At a failed step's gate, `retry --patch` runs it again with the patched input (it fails
    again, saying so), and `skip --patch` stands in for its output, which the next step uses."""
    workflow_id = await start_run("broken", {})
    await gate_open(http, as_, workflow_id, "fetch")
    retried = json.loads(
        await ok(
            http,
            keys["alice"],
            "retry",
            workflow_id,
            "fetch",
            "--patch",
            '{"message": "still down"}',
        )
    )
    assert retried["state"] == "retried"

    async def failed_again() -> Any:
        status = (await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))).json()
        fetch = next(s for s in status["steps"] if s["id"] == "fetch")
        return status if fetch.get("error") and "still down" in fetch["error"] else None

    status = await eventually(failed_again, what="failed with the patched message")
    assert [g["gate"] for g in status["open_gates"]] == ["fetch"]
    await ok(http, keys["alice"], "skip", workflow_id, "fetch", "--patch", '{"stand_in": true}')
    done = await wait_state(http, workflow_id, "completed", as_("vic"))
    assert done["output"]["got"] == {"stand_in": True}


async def test_cli_govern_with_a_request_file_and_memory_search(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """`govern --file` posts the shipped governed example (its context overridden by
    `--context`), which waits for a peer at tier 2; `memory search` answers with a table or,
    with `--json`, the API's hits (none in a fresh memory)."""
    request = ROOT / "definitions" / "governed" / "request.json"
    context = {"environment": "staging", "service_url": "http://127.0.0.1:9", "hook": "http://h"}
    started = json.loads(
        await ok(
            http,
            KEYS["olga"][0],
            "govern",
            "--file",
            str(request),
            "--context",
            json.dumps(context),
        )
    )
    status = await gate_open(http, as_, started["workflow_id"], "review")
    shipped = json.loads(request.read_text())
    assert status["governed"]["request"] == shipped["request"]
    assert status["governed"]["context"] == context
    assert status["open_gates"][0]["approvers"] == ["role:peer"]
    vic = KEYS["vic"][0]
    assert await ok(http, vic, "memory", "search", "storefront") == (
        "no past governed run matches\n"
    )
    assert json.loads(await ok(http, vic, "memory", "search", "storefront", "--json")) == {
        "hits": []
    }
    code, _, err = await cli(url_of(http), KEYS["olga"][0], "govern")
    assert code == 2 and "REQUEST" in err
