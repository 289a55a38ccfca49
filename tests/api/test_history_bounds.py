"""Bounded history: a run carries its state across continue-as-new, moves older audit entries to
hash-chained chunks, and its whole audit stays readable, page by page."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from activities.config import Settings
from activities.registry import ToolRegistry
from tests.api.conftest import Serve
from tests.conftest import SMALL_HISTORY_EVENTS
from tests.pipeline.gating import decide, open_gate
from tests.support.util import eventually
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow
from workflows.rules.state import AUDIT_CHUNK, AUDIT_KEEP

PARKED = {
    "name": "parked",
    "steps": [
        {"id": "first", "tool": "test.echo", "with": {"n": 1}},
        {
            "id": "gate",
            "needs": ["first"],
            "tool": "test.echo",
            "with": {"seen": "${steps.first.output.n}"},
            "approval": {"approvers": ["role:ops"], "quorum": 2},
        },
    ],
    "output": "${steps.gate.output.seen}",
}


async def test_long_parked_run_continues_as_new_and_keeps_every_audit_entry(
    small_history_env: WorkflowEnvironment,
    api_settings: Settings,
    registry: ToolRegistry,
    serve: Serve,
    as_: Any,
) -> None:
    """A run parked at a gate through hundreds of refused decisions continues as new several
    times, archives its older audit in chained chunks, keeps its votes, and completes; the API
    pages through every entry in order."""
    client = small_history_env.client
    settings = api_settings.model_copy(
        update={"temporal_address": client.service_client.config.target_host}
    )
    report = validate_definition(PARKED, registry)
    assert report.definition is not None, report.errors
    refused = AUDIT_KEEP + AUDIT_CHUNK + 50
    async with build_worker(client, settings, registry), serve(settings) as url:
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition),
            id=f"parked-{uuid.uuid4().hex[:8]}",
            task_queue=settings.stepgate_task_queue,
        )
        await open_gate(handle, "gate")
        await decide(handle, "gate", "approve", actor="alice")
        for i in range(refused):
            await handle.signal(
                PipelineWorkflow.decide,
                {"gate": "gate", "action": "approve", "actor": f"intruder{i}", "roles": ["dev"]},
            )

        async def settled() -> Any:
            s = await handle.query(PipelineWorkflow.status)
            return s if s.audit_total >= refused + 1 and s.continued >= 2 else None

        status = await eventually(settled, within=60, what="audit recorded across runs")
        assert status.state == "waiting" and status.open_gates[0].approvals[0].actor == "alice"
        await decide(handle, "gate", "approve", actor="bob")
        assert (await handle.result()).output == 1

        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            entries: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                params = {"limit": 97, **({"cursor": cursor} if cursor else {})}
                r = await http.get(
                    f"/workflows/{handle.id}/audit", params=params, headers=as_("vic")
                )
                assert r.status_code == 200, r.text
                body = r.json()
                entries += body["entries"]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
    total = body["total"]
    assert [e["seq"] for e in entries] == list(range(1, total + 1))
    assert total == refused + 2
    assert [e["actor"] for e in entries if e["outcome"] == "accepted"] == ["alice", "bob"]
    assert (
        sum(e["reason"].startswith("not_authorized") for e in entries if e["outcome"] == "refused")
        == refused
    )

    # The moved chunks are in the artifact store, each naming the previous one's hash.
    chunks = sorted(Path(settings.artifact_root).rglob("audit/*.json"))
    assert len(chunks) >= 1
    bodies = [json.loads(p.read_text()) for p in chunks]
    assert bodies[0]["prev_sha256"] is None and bodies[0]["first_seq"] == 1
    assert all(len(b["entries"]) == AUDIT_CHUNK for b in bodies)
    history = await handle.fetch_history()
    assert len(history.events) < SMALL_HISTORY_EVENTS * 2, "each run stays near the bound"
