"""Security by default: encrypted payloads, and secrets that never reach history or status."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities import default_registry
from activities.config import Settings
from tests.test_durability import definition
from tests.tools.server import LocalServer, Reply, json_reply
from worker import build_worker
from workflows.client import make_client
from workflows.pipeline import PipelineWorkflow


def payload_bytes(history_json: str) -> Iterator[tuple[dict[str, str], bytes]]:
    """Every payload in a history, with its metadata, decoded from the JSON's base64."""

    def walk(node: Any) -> Iterator[tuple[dict[str, str], bytes]]:
        if isinstance(node, dict):
            if "data" in node and "metadata" in node and isinstance(node["data"], str):
                meta = {
                    k: base64.b64decode(v).decode(errors="replace")
                    for k, v in node["metadata"].items()
                }
                yield meta, base64.b64decode(node["data"])
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    yield from walk(json.loads(history_json))


async def run_marker_pipeline(client: Client, settings: Settings, marker: str) -> str:
    """Run a pipeline whose input and output carry `marker`; return its raw history JSON."""
    inp = definition(
        """
name: sensitive
input: {type: object, properties: {card: {type: string}}}
steps:
  - id: keep
    tool: data.echo
    with: {value: "${input.card}"}
output: "${steps.keep.output.value}"
"""
    )
    inp.input = {"card": marker}
    async with build_worker(client, settings, default_registry(entry_points=False)):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            inp,
            id=f"enc-{uuid.uuid4()}",
            task_queue=settings.stepgate_task_queue,
        )
        assert (await handle.result()).output == marker
    return (await handle.fetch_history()).to_json()


LOCAL_MARKER_FIELDS = {
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
}


def sdk_marker(meta: dict[str, str], data: bytes) -> bool:
    """A marker payload the SDK writes itself, holding no value from the run."""
    if meta.get("encoding") != "json/plain":
        return False
    body = json.loads(data)
    return isinstance(body, dict) and set(body) <= LOCAL_MARKER_FIELDS


async def test_encryption_keeps_payloads_opaque_in_history(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    """With a key set, no payload in history holds the clear text; without one, it would."""
    marker = f"4111-{uuid.uuid4().hex}"
    plain = await run_marker_pipeline(temporal_env.client, settings, marker)
    assert any(marker.encode() in data for _, data in payload_bytes(plain)), (
        "control: visible without a key"
    )

    key = base64.b64encode(os.urandom(32)).decode()
    secure = settings.model_copy(update={"stepgate_encryption_key": key})
    encrypted_client = await make_client(secure, wait_s=5)
    marker = f"4111-{uuid.uuid4().hex}"
    history = await run_marker_pipeline(encrypted_client, secure, marker)
    # Search attributes stay plain by design (visibility indexes them); they hold only state
    # and pipeline names. Markers are written by the SDK itself: a local activity's marker holds
    # only its sequence, attempt, id, type and times (its result is a separate, sealed payload).
    # Every other payload must be sealed.
    payloads = [
        (m, d) for m, d in payload_bytes(history) if "type" not in m and not sdk_marker(m, d)
    ]
    unencrypted = [
        (meta, data[:80]) for meta, data in payloads if meta.get("encoding") != "binary/encrypted"
    ]
    assert payloads and not unencrypted, unencrypted
    assert not any(marker.encode() in data for _, data in payloads)


async def test_secret_reaches_the_tool_but_not_history_status_or_output(
    client: Client,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """`${secret.NAME}` is resolved inside the activity only: the server sees it; history,
    status previews and the run output never do, even when the server echoes it back."""
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("STEPGATE_SECRET_API_TOKEN", token)
    server = LocalServer()
    server.route(
        "GET", "/whoami", lambda seen: json_reply({"echo": seen.headers.get("authorization")})
    )
    server.start()
    try:
        inp = definition(
            f"""
name: secretive
secrets: [API_TOKEN]
steps:
  - id: call
    tool: http.request
    with:
      method: GET
      url: "{server.url("/whoami")}"
      headers: {{Authorization: "Bearer ${{secret.API_TOKEN}}"}}
output: "${{steps.call.output.json.echo}}"
"""
        )
        async with build_worker(client, settings, default_registry(entry_points=False)):
            handle = await client.start_workflow(
                PipelineWorkflow.run,
                inp,
                id=f"sec-{uuid.uuid4()}",
                task_queue=settings.stepgate_task_queue,
            )
            result = await handle.result()
            status = await handle.query(PipelineWorkflow.status)
        assert server.seen[0].headers["authorization"] == f"Bearer {token}"
    finally:
        server.stop()
    history = (await handle.fetch_history()).to_json()
    assert not any(token.encode() in data for _, data in payload_bytes(history))
    assert token not in status.model_dump_json()
    assert result.output == "Bearer ***"
    out, err = capfd.readouterr()
    assert token not in out + err


async def test_secret_echoed_in_another_case_or_url_encoded_reaches_neither_history_nor_status(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that echoes a secret holding `+ / =` and a space upper-cased, form-encoded and
    path-encoded, in a reply and in an unexpected status: no form of it reaches history, the
    status (previews, the error) or the output."""
    token = f"Tok+en/{uuid.uuid4().hex[:12]}= x"
    forms = [token, token.upper(), quote_plus(token), quote(token), quote(token, safe="")]
    monkeypatch.setenv("STEPGATE_SECRET_API_TOKEN", token)
    server = LocalServer()
    server.route("GET", "/echo", lambda seen: json_reply({"seen": forms}))
    server.route("GET", "/check", lambda seen: Reply(400, " ".join(forms).encode()))
    server.start()
    try:
        inp = definition(
            f"""
name: echoes
secrets: [API_TOKEN]
steps:
  - id: echo
    tool: http.request
    with: {{url: "{server.url("/echo")}", headers: {{X-Key: "${{secret.API_TOKEN}}"}}}}
  - id: check
    needs: [echo]
    tool: http.request
    retry: {{max_attempts: 1}}
    with: {{url: "{server.url("/check")}", query: {{key: "${{secret.API_TOKEN}}"}}}}
output: "${{steps.echo.output.json.seen}}"
"""
        )
        async with build_worker(client, settings, default_registry(entry_points=False)):
            handle = await client.start_workflow(
                PipelineWorkflow.run,
                inp,
                id=f"sec-{uuid.uuid4()}",
                task_queue=settings.stepgate_task_queue,
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            status = await handle.query(PipelineWorkflow.status)
        assert server.seen[1].query["key"] == [token]
    finally:
        server.stop()
    shown = status.model_dump_json().lower()
    assert "answered http 400: *** *** *** *** ***" in shown
    history = b" ".join(data for _, data in payload_bytes((await handle.fetch_history()).to_json()))
    for form in forms:
        assert form.lower() not in shown, form
        assert form.lower().encode() not in history.lower(), form
