"""Permissions: who may start what, and who may read; the mapping comes from a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from activities.config import Settings
from tests.api.conftest import Serve
from tests.api.helpers import eventually, wait_state

Auth = Callable[[str], dict[str, str]]
REPORT = {"title": "Q3", "body": "All green."}


async def test_start_gated_pipeline_auto_as_operator_forbidden(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """An operator cannot skip approval_demo's gate with auto mode (403 naming start_auto);
    an admin can, and the run completes with no person involved."""
    body = {"definition": "approval_demo", "input": REPORT, "approval_mode": "auto"}
    r = await http.post("/workflows", json=body, headers=as_("olga"))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["details"] == {"missing": ["start_auto"]}
    assert "start_auto" in r.json()["error"]["message"]
    r = await http.post("/workflows", json=body, headers=as_("root"))
    assert r.status_code == 201, r.text
    status = await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))
    assert [a["kind"] for a in status["audit"]] == ["auto_approve"]


async def test_start_inline_copy_without_gate_as_operator_forbidden(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """approval_demo posted inline without its gate is refused to an operator (start_inline)
    before it is validated; an admin may start it."""
    shipped = (await http.get("/definitions/approval_demo", headers=as_("olga"))).json()
    ungated = shipped["definition"]
    for step in ungated["steps"]:
        step.pop("approval", None)
    body = {"definition": ungated, "input": REPORT}
    r = await http.post("/workflows", json=body, headers=as_("olga"))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["details"] == {"missing": ["start_inline"]}
    # Not validated first: a broken inline definition gets the same answer.
    broken = await http.post("/workflows", json={"definition": {"x": 1}}, headers=as_("olga"))
    assert broken.status_code == 403
    r = await http.post("/workflows", json=body, headers=as_("root"))
    assert r.status_code == 201, r.text
    await wait_state(http, r.json()["workflow_id"], "completed", as_("vic"))


async def test_schedule_needs_what_the_start_needs(http: httpx.AsyncClient, as_: Auth) -> None:
    """POST /schedules checks what a start would (auto mode, inline) plus `schedule`."""
    base = {"definition": "approval_demo", "input": REPORT, "interval": "1h"}
    r = await http.post("/schedules", json={**base, "approval_mode": "auto"}, headers=as_("olga"))
    assert (r.status_code, r.json()["error"]["details"]) == (403, {"missing": ["start_auto"]})
    inline = {"name": "x", "steps": [{"id": "a", "tool": "test.echo"}]}
    r = await http.post("/schedules", json={**base, "definition": inline}, headers=as_("olga"))
    assert (r.status_code, r.json()["error"]["details"]) == (403, {"missing": ["start_inline"]})
    r = await http.post("/schedules", json=base, headers=as_("vic"))
    assert (r.status_code, r.json()["error"]["details"]) == (403, {"missing": ["schedule"]})


async def test_reads_as_approver_without_read_forbidden(
    http: httpx.AsyncClient, as_: Auth, start_run: Callable[..., Any]
) -> None:
    """A key whose roles only approve (carol) reads nothing, yet sees its inbox and decides."""
    workflow_id = await start_run()
    await wait_state(http, workflow_id, "waiting", as_("vic"))
    for path in ("/workflows", f"/workflows/{workflow_id}", "/tools", "/definitions", "/schedules"):
        r = await http.get(path, headers=as_("carol"))
        assert (r.status_code, r.json()["error"]["details"]) == (403, {"missing": ["read"]}), path
    decode = await http.post("/codec/decode", json={"payloads": []}, headers=as_("carol"))
    assert decode.status_code == 403

    async def inbox() -> list[str]:
        r = await http.get("/approvals", headers=as_("carol"))
        return [i["workflow_id"] for i in r.json()["items"]]

    await eventually(inbox, lambda ids: workflow_id in ids, "carol's inbox")
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("carol")
    )
    assert r.status_code == 200, r.text
    assert r.json()["decided_by"] == "carol"


async def test_permissions_file_changes_what_a_role_may(
    serve: Serve, api_settings: Settings, worker: None, as_: Auth, tmp_path: Path
) -> None:
    """A permissions file gives operators start_inline and takes read from viewers."""
    path = tmp_path / "permissions.yaml"
    path.write_text("operator: [read, start, start_inline]\nviewer: []\n")
    settings = api_settings.model_copy(update={"stepgate_permissions_file": path})
    inline = {"name": "inline_echo", "steps": [{"id": "a", "tool": "test.echo"}]}
    async with serve(settings) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/workflows", json={"definition": inline}, headers=as_("olga"))
        assert r.status_code == 201, r.text
        assert (await c.get("/tools", headers=as_("vic"))).status_code == 403
        r = await c.post(f"/workflows/{r.json()['workflow_id']}/cancel", headers=as_("olga"))
        assert (r.status_code, r.json()["error"]["details"]) == (403, {"missing": ["lifecycle"]})
