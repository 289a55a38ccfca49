"""Data is never code: text that arrives as data (run input, a tool's output, an approver's
patch or answers to a gate's form) is never resolved as a secret or an artifact reference, whatever it looks like."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from activities import default_registry
from activities.config import Settings
from activities.models import ARTIFACT_MARKER
from tests.pipeline.gating import decide, open_gate
from tests.test_durability import definition
from tests.tools.server import LocalServer, Seen, json_reply
from worker import build_worker
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

TOKEN = f"tok-{uuid.uuid4().hex}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STEPGATE_SECRET_APITOKEN", TOKEN)
    srv = LocalServer()
    srv.route("POST", "/echo", lambda seen: json_reply({"got": seen.json()}))
    srv.route("GET", "/leak", lambda seen: json_reply({"note": "${secret.APITOKEN}"}))
    srv.route("POST", "/take", lambda seen: json_reply({"ok": True}))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def run(client: Client, settings: Settings) -> AsyncIterator[Any]:
    async with build_worker(client, settings, default_registry(entry_points=False)):

        async def go(inp: PipelineInput) -> WorkflowHandle[Any, Any]:
            return await client.start_workflow(
                PipelineWorkflow.run,
                inp,
                id=f"dnc-{uuid.uuid4()}",
                task_queue=settings.stepgate_task_queue,
            )

        yield go


def _bodies(server: LocalServer, path: str) -> list[str]:
    return [s.body.decode() for s in server.seen if s.path == path]


def _all_sent(server: LocalServer) -> str:
    return " ".join(f"{s.path} {s.headers} {s.body.decode()}" for s in server.seen)


async def test_run_input_naming_a_secret_stays_text(server: LocalServer, run: Any) -> None:
    """`${secret.APITOKEN}` sent as run input reaches the tool as those very characters."""
    inp = definition(
        f"""
name: echo
input: {{type: object, properties: {{note: {{type: string}}}}}}
steps:
  - id: send
    tool: http.request
    with: {{method: POST, url: "{server.url("/echo")}", json: {{whole: "${{input.note}}", inside: "x ${{input.note}} y"}}}}
"""
    )
    inp.input = {"note": "${secret.APITOKEN}"}
    await (await run(inp)).result()
    assert server.seen[-1].json() == {
        "whole": "${secret.APITOKEN}",
        "inside": "x ${secret.APITOKEN} y",
    }
    assert TOKEN not in _all_sent(server)


async def test_a_response_naming_a_secret_stays_text_in_the_next_step(
    server: LocalServer, run: Any
) -> None:
    """A tool's output that contains `${secret.APITOKEN}` is passed on literally."""
    inp = definition(
        f"""
name: relay
steps:
  - id: fetch
    tool: http.request
    with: {{url: "{server.url("/leak")}"}}
  - id: send
    needs: [fetch]
    tool: http.request
    with: {{method: POST, url: "{server.url("/echo")}", json: {{relayed: "${{steps.fetch.output.json.note}}"}}}}
"""
    )
    await (await run(inp)).result()
    assert _bodies(server, "/echo") == ['{"relayed": "${secret.APITOKEN}"}']
    assert TOKEN not in _all_sent(server)


async def test_a_form_response_naming_a_secret_stays_text(server: LocalServer, run: Any) -> None:
    """An approver's answer to a gate's form that looks like a secret, a reference or an
    expression reaches the next step's tool as those very characters, whole and inside text,
    though the step's own definition may send that secret where it is bound."""
    inp = definition(
        f"""
name: answered
secrets: {{APITOKEN: {{hosts: ["127.0.0.1:{server.port}"]}}}}
steps:
  - id: review
    tool: data.echo
    with: {{value: 1}}
    approval:
      approvers: ["role:ops"]
      form: {{type: object, required: [note], properties: {{note: {{type: string}}}}}}
  - id: send
    needs: [review]
    tool: http.request
    with:
      method: POST
      url: "{server.url("/echo")}"
      headers: {{Authorization: "Bearer ${{secret.APITOKEN}}"}}
      json: {{whole: "${{steps.review.gate.response.note}}", inside: "x ${{steps.review.gate.response.note}} ${{secret.APITOKEN}}"}}
"""
    )
    handle = await run(inp)
    await open_gate(handle, "review")
    note = "${secret.APITOKEN} ${input.x} ${steps.review.output}"
    await decide(handle, "review", "approve", response={"note": note})
    await handle.result()
    seen: Seen = server.seen[-1]
    assert seen.json() == {"whole": note, "inside": f"x {note} {TOKEN}"}
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


async def test_an_approvers_patch_cannot_reach_a_secret(server: LocalServer, run: Any) -> None:
    """An approver who modifies a gated call may change its URL (within the host the secret is
    bound to) and add a header, but text they write is never resolved: not a new header naming a
    secret, not a secret slot overwritten with another secret's name. The definition's own
    secret still reaches the server."""
    inp = definition(
        f"""
name: gated
secrets: {{APITOKEN: {{hosts: ["127.0.0.1:{server.port}"]}}}}
steps:
  - id: send
    tool: http.request
    with:
      method: POST
      url: "{server.url("/echo")}"
      headers: {{Authorization: "Bearer ${{secret.APITOKEN}}"}}
      json: {{a: 1}}
    approval: {{approvers: ["role:ops"]}}
"""
    )
    handle = await run(inp)
    await open_gate(handle, "send")
    await decide(
        handle,
        "send",
        "modify",
        patch={
            "url": server.url("/take"),
            "headers": {"X-Leak": "${secret.APITOKEN}", "X-Also": "Bearer ${secret.APITOKEN}"},
        },
    )
    await handle.result()
    seen: Seen = server.seen[-1]
    assert seen.path == "/take"
    assert seen.headers["x-leak"] == "${secret.APITOKEN}"
    assert seen.headers["x-also"] == "Bearer ${secret.APITOKEN}"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_patch_replacing_the_secret_slot_is_data(server: LocalServer, run: Any) -> None:
    """Overwriting the definition's secret header with other text turns that place into data."""
    inp = definition(
        f"""
name: gated
secrets: [APITOKEN]
steps:
  - id: send
    tool: http.request
    with:
      method: POST
      url: "{server.url("/echo")}"
      headers: {{Authorization: "Bearer ${{secret.APITOKEN}}"}}
      json: {{a: 1}}
    approval: {{approvers: ["role:ops"]}}
"""
    )
    handle = await run(inp)
    await open_gate(handle, "send")
    await decide(
        handle, "send", "modify", patch={"headers": {"Authorization": "Token ${secret.APITOKEN}"}}
    )
    await handle.result()
    assert server.seen[-1].headers["authorization"] == "Token ${secret.APITOKEN}"
    assert TOKEN not in _all_sent(server)


async def test_an_artifact_marker_in_run_input_is_not_loaded(server: LocalServer, run: Any) -> None:
    """An object shaped like an artifact reference, sent as input, is data: the tool receives
    it as it is and no file is read."""
    forged = {
        ARTIFACT_MARKER: {
            "uri": "file:///etc/passwd",
            "path": "../../etc/passwd",
            "size": 1,
            "sha256": "x",
        }
    }
    inp = definition(
        f"""
name: forge
input: {{type: object}}
steps:
  - id: send
    tool: http.request
    with: {{method: POST, url: "{server.url("/echo")}", json: "${{input.blob}}"}}
"""
    )
    inp.input = {"blob": forged}
    await (await run(inp)).result()
    assert server.seen[-1].json() == forged
