"""package_application's release gate over a day, on the time-skipping test server: nobody
decides, so the reviewers are reminded (after 4 h, then 8 h later), the gate escalates to the
lead when its 24 hours are up, and the lead's approval completes the run."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import default_registry
from activities.config import Settings
from tests.catalog import archives
from tests.catalog.conftest import TOOLCHAIN
from tests.catalog.model import CatalogModel
from tests.catalog.test_packaging import publish
from tests.conftest import ROOT
from tests.pipeline.gating import decide, open_gate
from tests.tools.server import Reply
from worker import build_worker
from workflows.language.approval import NotifySpec
from workflows.language.validation import validate_definition
from workflows.models import NotifyDefaults, PipelineInput, PipelineResult, Principal
from workflows.pipeline import PipelineWorkflow

DEFINITION = ROOT / "definitions" / "packaging" / "package_application.yaml"


async def test_release_gate_reminds_then_escalates_to_the_lead_after_a_day(
    time_skipping_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    workspace_root: Path,
    model: CatalogModel,
) -> None:
    """The hook hears the gate open, two reminders before the deadline (the third would come
    after it) and the escalation at 24 h, which adds role:lead to the approvers; the lead's
    approval completes the run."""
    hooks: list[dict[str, Any]] = []
    model.server.route("POST", "/hooks", lambda seen: (hooks.append(seen.json()), Reply(200))[1])
    client = time_skipping_env.client
    settings = Settings(
        temporal_address=client.service_client.config.target_host,
        stepgate_task_queue=task_queue,
        stepgate_data=tmp_path / "data",
        stepgate_artifact_root=workspace_root / "artifacts",
        stepgate_shell_allow=TOOLCHAIN,
        stepgate_http_allow=["127.0.0.1"],
        stepgate_llm_base_url=model.server.url("/v1/"),
        stepgate_llm_model="scripted-1",
        _env_file=None,  # type: ignore[call-arg]
    )
    registry = default_registry(entry_points=False)
    report = validate_definition(yaml.safe_load(DEFINITION.read_text()), registry)
    assert report.definition is not None, [str(e) for e in report.errors]
    inp = {"package_url": publish(model, archives.deb()), "target": "debian", "prefix": "/opt/app"}
    notify = NotifySpec.model_validate(
        {"tool": "notify.webhook", "with": {"url": model.server.url("/hooks")}}
    )
    async with build_worker(client, settings, registry):
        handle: WorkflowHandle[PipelineWorkflow, PipelineResult] = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(
                definition=report.definition,
                input=inp,
                requester=Principal(principal="olga", roles=["operator"]),
                notify=NotifyDefaults(notify=notify),
            ),
            id=f"pkg-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        opened = await open_gate(handle, "release")
        assert opened.approvers == ["role:release"] and not opened.escalated
        await time_skipping_env.sleep(timedelta(hours=24, minutes=1))
        escalated = await open_gate(handle, "release")
        assert escalated.escalated and "role:lead" in escalated.approvers
        assert escalated.reminders == 2
        await decide(handle, "release", "approve", actor="lea", roles=["lead"])
        result = await handle.result()
    assert result.state == "completed"
    kinds = [h["text"].split("]")[0].lstrip("[") for h in hooks]
    assert kinds == ["opened", "reminder", "reminder", "escalated"], kinds
    assert "role:release, role:lead" in hooks[-1]["text"]
