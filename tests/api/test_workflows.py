"""Starting runs, reading them and their lifecycle."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from temporalio.client import Client

from activities.config import Settings
from activities.registry import ToolRegistry
from api import status as api_status
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

Auth = Callable[[str], dict[str, str]]


async def test_start_hello_completes_end_to_end(http: httpx.AsyncClient, as_: Auth) -> None:
    """`hello` started over HTTP runs on the worker and completes with its greeting."""
    r = await http.post(
        "/workflows", json={"definition": "hello", "input": {"name": "Ada"}}, headers=as_("olga")
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["workflow_id"].startswith("hello-")
    assert body["links"]["self"] == f"/workflows/{body['workflow_id']}"
    assert body["links"]["web_ui"].endswith(f"/{body['workflow_id']}/{body['run_id']}/history")
    status = await wait_state(http, body["workflow_id"], "completed", as_("vic"))
    assert status["output"] == {"greeting": "Hello, Ada!"}
    assert status["requester"] == {"principal": "olga", "roles": ["operator"]}


async def test_start_unknown_definition_unprocessable(http: httpx.AsyncClient, as_: Auth) -> None:
    """An unknown catalog name is a 422 pointing at `definition`."""
    r = await http.post("/workflows", json={"definition": "nope"}, headers=as_("olga"))
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "definition"


async def test_start_invalid_input_lists_every_error(http: httpx.AsyncClient, as_: Auth) -> None:
    """Input that breaks the schema is a 422 with every error and its path."""
    r = await http.post(
        "/workflows",
        json={"definition": "approval_demo", "input": {"body": 3}},
        headers=as_("olga"),
    )
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert {"input", "input.body"} == {d["path"] for d in details}


async def test_start_invalid_inline_definition_lists_every_error(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """An inline definition is validated like a catalog file; each error carries its path."""
    inline = {
        "name": "x",
        "steps": [{"id": "a", "tool": "no.such_tool"}, {"id": "a", "tool": "test.echo"}],
    }
    r = await http.post("/workflows", json={"definition": inline}, headers=as_("root"))
    assert r.status_code == 422
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert {"definition.steps[0].tool", "definition.steps[1].id"} <= paths


async def test_start_inline_definition_completes(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """A valid inline definition runs like a catalog one (for a principal with start_inline)."""
    inline = {"name": "inline_echo", "steps": [{"id": "a", "tool": "test.echo", "with": {"v": 1}}]}
    workflow_id = await start_run(inline, who="root")
    status = await wait_state(http, workflow_id, "completed", as_("vic"))
    assert status["pipeline"] == "inline_echo"


async def test_start_malformed_body_unprocessable(http: httpx.AsyncClient, as_: Auth) -> None:
    """A body that is not a WorkflowCreate is a 422 in the API's error shape; one that is not
    JSON at all is a 400."""
    r = await http.post("/workflows", json={"definition": "hello", "extra": 1}, headers=as_("olga"))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid"
    assert r.json()["error"]["details"][0]["path"] == "body.extra"
    r = await http.post(
        "/workflows",
        content=b"{not json",
        headers={**as_("olga"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unparseable"


async def test_start_same_id_same_body_returns_existing(
    http: httpx.AsyncClient, as_: Auth, team: str
) -> None:
    """Repeating a start with the same id and body is 200 with the same run; another body, or
    the same body from another principal, is 409."""
    body = {"definition": "gated", "input": {"ref": "v1"}, "workflow_id": f"idem-{team}"}
    first = await http.post("/workflows", json=body, headers=as_("olga"))
    assert first.status_code == 201
    again = await http.post("/workflows", json=body, headers=as_("olga"))
    assert again.status_code == 200
    assert again.json()["run_id"] == first.json()["run_id"]
    other = await http.post(
        "/workflows", json={**body, "input": {"ref": "v2"}}, headers=as_("olga")
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "workflow_exists"
    someone_else = await http.post("/workflows", json=body, headers=as_("bob"))
    assert someone_else.status_code == 409


async def test_start_auto_approval_as_admin_completes(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """approval_mode auto (admin: start_auto) passes gates without a person."""
    workflow_id = await start_run("gated", approval_mode="auto", who="root")
    status = await wait_state(http, workflow_id, "completed", as_("vic"))
    assert any(a["kind"] == "auto_approve" for a in status["audit"])


async def test_get_unknown_run_not_found(http: httpx.AsyncClient, as_: Auth) -> None:
    """Status, audit and events of an unknown run are 404."""
    for suffix in ("", "/audit", "/events"):
        r = await http.get(f"/workflows/no-such-run{suffix}", headers=as_("vic"))
        assert r.status_code == 404, suffix
        assert r.json()["error"]["code"] == "not_found"


async def test_list_filters_by_pipeline_and_state_with_cursor(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """Visibility lists runs by state and pipeline, one page per cursor."""
    ids = {await start_run("gated", {"ref": team}) for _ in range(3)}
    for workflow_id in ids:
        await wait_state(http, workflow_id, "waiting", as_("vic"))

    async def mine() -> set[str]:
        r = await http.get(
            "/workflows", params={"state": "waiting", "awaiting": "me"}, headers=as_("alice")
        )
        return {i["workflow_id"] for i in r.json()["items"]}

    await eventually(mine, lambda found: found == ids, "visibility to catch up")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"pipeline": "gated", "awaiting": "me", "page_size": 2}
        if cursor:
            params["cursor"] = cursor
        r = await http.get("/workflows", params=params, headers=as_("alice"))
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [i["workflow_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert (
        await http.get("/workflows", params={"state": "bogus"}, headers=as_("vic"))
    ).status_code == 422


async def test_pause_resume_cancel_accepted(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth
) -> None:
    """Operators pause, resume and cancel a run; each is a 202 and lands in the audit trail."""
    workflow_id = await start_run("gated")
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    assert (
        await http.post(f"/workflows/{workflow_id}/pause", headers=as_("olga"))
    ).status_code == 202
    await wait_state(http, workflow_id, "paused", as_("vic"))
    assert (
        await http.post(f"/workflows/{workflow_id}/resume", headers=as_("olga"))
    ).status_code == 202
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    r = await http.post(f"/workflows/{workflow_id}/cancel", headers=as_("olga"))
    assert r.status_code == 202
    assert r.json() == {"workflow_id": workflow_id, "accepted": True, "action": "cancel"}
    await wait_state(http, workflow_id, "cancelled", as_("vic"))
    audit = (await http.get(f"/workflows/{workflow_id}/audit", headers=as_("vic"))).json()
    lifecycle = [(a["action"], a["actor"]) for a in audit["entries"] if a["kind"] == "lifecycle"]
    assert lifecycle == [("pause", "olga"), ("resume", "olga"), ("cancel", "olga")]
    again = await http.post(f"/workflows/{workflow_id}/pause", headers=as_("olga"))
    assert again.status_code == 409


async def test_cancel_as_viewer_forbidden(http: httpx.AsyncClient, as_: Auth) -> None:
    """Viewers cannot cancel; unknown runs are 404 for operators."""
    assert (await http.post("/workflows/whatever/cancel", headers=as_("vic"))).status_code == 403
    assert (await http.post("/workflows/no-such-run/pause", headers=as_("olga"))).status_code == 404


async def test_list_refuses_a_cursor_it_did_not_issue(
    http: httpx.AsyncClient, as_: Callable[[str], dict[str, str]]
) -> None:
    """A mangled or invented cursor names no page: a 404 at once, not a server error after long
    retries (nor a 422 for a value the OpenAPI document allows)."""
    for cursor in ("not-base64!", "AAAA", "eyJmb28iOiAxfQ==", "0" * 4_096):
        r = await http.get("/workflows", params={"cursor": cursor}, headers=as_("vic"))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["message"].startswith("no page has this cursor")


async def test_status_of_run_without_worker_is_503_not_a_hang(
    http: httpx.AsyncClient,
    as_: Callable[[str], dict[str, str]],
    client: Client,
    api_settings: Settings,
    registry: ToolRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When every worker of a run is gone and its history has moved since the last read (so the
    status remembered at that point no longer holds), status answers 503 worker_unavailable
    promptly."""
    # The 503 comes when the status query times out: 1 s instead of 5 says the same.
    monkeypatch.setattr(api_status, "QUERY_TIMEOUT", timedelta(seconds=1))
    queue = f"gone-{uuid.uuid4()}"
    report = validate_definition(
        {
            "name": "orphan",
            "steps": [{"id": "wait", "tool": "test.echo", "approval": {"approvers": ["role:x"]}}],
        },
        registry,
    )
    assert report.definition is not None
    settings = api_settings.model_copy(update={"stepgate_task_queue": queue})
    async with build_worker(client, settings, registry):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition),
            id=f"orphan-{uuid.uuid4()}",
            task_queue=queue,
        )
        await wait_state(http, handle.id, "waiting", as_("vic"))
    # A signal nobody can take moves the history: only the run itself can say what it did.
    await handle.signal(PipelineWorkflow.pause)
    started = time.monotonic()
    r = await http.get(f"/workflows/{handle.id}", headers=as_("vic"))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "worker_unavailable"
    assert r.headers["Retry-After"]
    assert time.monotonic() - started < 15
