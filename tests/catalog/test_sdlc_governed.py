"""The shipped governed example (definitions/governed/request.json) posted as it is, with its
URLs pointed at loopback: the default policy makes it tier 2, a peer approves the plan, it runs,
and the memory remembers it (found and forgotten with `stepgate memory` too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.config import Settings
from tests.catalog.sdlc_team import stack
from tests.conftest import ROOT
from tests.support.api import stepgate
from tests.support.util import eventually
from tests.tools.server import LocalServer, json_reply

REQUEST = ROOT / "definitions" / "governed" / "request.json"


async def test_governed_example_is_reviewed_by_a_peer_runs_and_is_remembered(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """Two POSTs of medium risk score 4 under the default policy: tier 2, one `role:peer`, the
    requester refused; once a peer approves, maintenance mode is turned on before the channel
    is told, the run completes, a memory search finds it, and only an admin may forget it."""
    body: dict[str, Any] = json.loads(REQUEST.read_text())
    service = LocalServer()
    service.route("POST", "/admin/maintenance", lambda seen: json_reply({"enabled": True}))
    service.route("POST", "/release", lambda seen: json_reply({"ok": True}))
    service.start()
    try:
        body["context"].update(service_url=service.url("/admin"), hook=service.url("/release"))
        async with stack(client, settings, tmp_path, "") as (http, keys):
            olga = {"Authorization": f"Bearer {keys['olga']}"}
            r = await http.post("/governed", json=body, headers=olga)
            assert r.status_code == 201, r.text
            workflow_id = r.json()["workflow_id"]
            url = f"/workflows/{workflow_id}"

            async def read() -> Any:
                return (await http.get(url, headers=olga)).json()

            found = await eventually(read, ok=lambda s: s["open_gates"], what="review open")
            assessment = found["governed"]["assessment"]
            assert (assessment["tier"], assessment["score"]) == (2, 4.0)
            review = found["open_gates"][0]
            assert (review["gate"], review["approvers"]) == ("review", ["role:peer"])
            assert service.seen == []
            mine = await http.post(f"{url}/gates/review", json={"action": "approve"}, headers=olga)
            assert mine.status_code == 403, mine.text
            ok = await http.post(
                f"{url}/gates/review",
                json={"action": "approve", "digest": review["digest"], "comment": "staging only"},
                headers={"Authorization": f"Bearer {keys['pat']}"},
            )
            assert ok.status_code == 200, ok.text
            done = await eventually(
                read,
                ok=lambda s: s["state"] in ("completed", "failed", "cancelled"),
                within=60,
                what="governed run closed",
            )
            assert done["state"] == "completed", done
            assert [s.path for s in service.seen] == ["/admin/maintenance", "/release"]
            assert service.seen[1].json() == {
                "text": "The staging storefront is in maintenance mode"
            }
            hits = await eventually(
                lambda: http.get("/memory", params={"q": "storefront maintenance"}, headers=olga),
                ok=lambda r: r.status_code == 200 and r.json()["hits"],
                what="remembered",
            )
            hit = hits.json()["hits"][0]
            assert hit["pattern"]["request"] == body["request"] and hit["pattern"]["tier"] == 2

            # The same from the terminal: the hit as a table row, then forgotten by an admin.
            url = str(http.base_url).rstrip("/")
            code, out, err = await stepgate(url, keys["olga"], "memory", "search", "storefront")
            assert code == 0, err
            row = out.splitlines()[1].split()
            assert row[1:4] == [str(hit["id"]), "2", "completed"] and "storefront" in out
            code, _, err = await stepgate(url, keys["olga"], "memory", "delete", str(hit["id"]))
            assert code == 1 and "memory_delete" in err
            code, out, err = await stepgate(url, keys["root"], "memory", "delete", str(hit["id"]))
            assert code == 0 and json.loads(out) == {"id": hit["id"], "deleted": True}, err
            code, out, _ = await stepgate(url, keys["olga"], "memory", "search", "storefront")
            assert out == "no past governed run matches\n"
    finally:
        service.stop()
