"""Worker Versioning (docs/versioning.md): a build is named after its workflow code, runs stay
pinned to the build they started on, and the rollout an operator follows works end to end on
the suite's dev server, with real workers, the real API and the `stepgate` command."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from structlog.testing import capture_logs
from temporalio.api.enums.v1 import EventType, VersioningBehavior
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import default_registry
from activities.config import Settings
from activities.registry import ToolRegistry
from tests.conftest import ROOT, temporal_cli
from tests.pipeline.gating import decide, open_gate
from tests.support.api import serve_app, stepgate
from tests.support.util import eventually
from tests.support.workers import WorkerProcess, worker_env
from worker import build_worker, warn_of_unversioned_runs
from workflows.builds import default_build_id, deployment_config, package_version
from workflows.deployment import UNVERSIONED_OPEN_RUNS, describe, make_current_at_start
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

ADMIN_KEY = "key-root-versions-0123456789"
PARKED = """
name: rollout
steps:
  - id: review
    tool: data.echo
    with: {value: parked}
    approval: {stage: before, approvers: ["role:ops"]}
  - id: child
    needs: [review]
    pipeline: rollout_child
    with: {}
output: "${steps.review.output.value}"
"""
CHILD = """
name: rollout_child
steps:
  - id: work
    tool: data.echo
    with: {value: child}
output: "${steps.work.output.value}"
"""
FRESH = """
name: fresh
steps:
  - id: work
    tool: data.echo
    with: {value: fresh}
output: "${steps.work.output.value}"
"""
# Build B's change to the workflow code: every run begins with a timer, so a history written by
# build A would not replay on B (its first command differs) and B's runs are told apart by it.
RUN_METHOD = "    async def run(self, inp: PipelineInput) -> PipelineResult:\n"
B_TIMER = "build B"
B_CHANGE = f'        await workflow.sleep(0.001, summary="{B_TIMER}")\n'


def copy_code(to: Path) -> Path:
    """The product's code (worker.py and its packages) in a folder of its own."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("workflows", "activities", "api"):
        shutil.copytree(ROOT / package, to / package, ignore=ignore)
    shutil.copy2(ROOT / "worker.py", to / "worker.py")
    return to


def build_b(to: Path) -> Path:
    """A copy of the code whose PipelineWorkflow starts every run with a timer."""
    root = copy_code(to)
    pipeline = root / "workflows" / "pipeline.py"
    text = pipeline.read_text()
    assert text.count(RUN_METHOD) == 1, "PipelineWorkflow.run changed: update RUN_METHOD"
    pipeline.write_text(text.replace(RUN_METHOD, RUN_METHOD + B_CHANGE))
    return root


def keyed(settings: Settings, tmp_path: Path, deployment: str) -> Settings:
    """The test's settings with its own deployment, an admin key and an empty catalog."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump([{"key": ADMIN_KEY, "principal": "root", "roles": ["admin"]}]))
    (tmp_path / "definitions").mkdir(exist_ok=True)
    return settings.model_copy(
        update={
            "stepgate_deployment_name": deployment,
            "stepgate_api_keys_file": keys,
            "stepgate_definitions_dir": tmp_path / "definitions",
        }
    )


async def start(
    client: Client, settings: Settings, registry: ToolRegistry, text: str
) -> WorkflowHandle[Any, Any]:
    catalog = {"rollout_child": 1}
    report = validate_definition(yaml.safe_load(text), registry, catalog=catalog)
    child = validate_definition(yaml.safe_load(CHILD), registry).definition
    assert report.definition is not None and child is not None, report.errors
    return await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(definition=report.definition, pipelines={"rollout_child": child}),
        id=f"wf-{uuid.uuid4()}",
        task_queue=settings.stepgate_task_queue,
    )


async def pinned_to(client: Client, workflow_id: str) -> str:
    """The build a run is pinned to (Temporal's record of it), checking that it is pinned."""
    described = await client.get_workflow_handle(workflow_id).describe()
    info = described.raw_description.workflow_execution_info.versioning_info
    assert info.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, info
    return info.deployment_version.build_id


async def timer_summaries(handle: WorkflowHandle[Any, Any]) -> list[bytes]:
    history = await handle.fetch_history()
    return [
        e.user_metadata.summary.data
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


def build_row(listing: dict[str, Any], build_id: str) -> dict[str, Any]:
    return next(b for b in listing["builds"] if b["build_id"] == build_id)


async def test_rollout_parked_run_finishes_on_its_build_while_new_runs_go_to_the_next(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """Build A is current and a run parks at its gate on A. Build B, whose workflow code
    differs, starts in a process of its own and `stepgate versions set-current` makes it
    current: a new run starts and finishes on B (its history holds B's timer), the parked run
    is approved as usual and finishes on A without B's timer, the child pipeline it starts then
    runs on A too, and `stepgate versions` shows A drained with no open run and B current.
    Once A's workers stop, a status read of a run that closed on A finds no worker (503)."""
    name = f"rollout-{uuid.uuid4().hex[:8]}"
    on = keyed(settings, tmp_path, name)
    registry = default_registry(entry_points=False)
    a = deployment_config(on)
    assert a is not None
    build_a = a.version.build_id
    b_root = build_b(tmp_path / "b")
    build_b_id = default_build_id(b_root)
    assert build_a == default_build_id() != build_b_id
    assert build_b_id.startswith(f"{package_version()}+")

    async with serve_app(on, registry) as url:
        async with build_worker(client, on, registry, deployment=a):
            assert await make_current_at_start(client, name, build_a, "test") is None
            parked = await start(client, on, registry, PARKED)
            await open_gate(parked, "review")
            assert await pinned_to(client, parked.id) == build_a
            unversioned = f"{UNVERSIONED_OPEN_RUNS} AND WorkflowId = '{parked.id}'"
            assert (await client.count_workflows(unversioned)).count == 0

            env = worker_env(
                on, STEPGATE_DEPLOYMENT_NAME=name, STEPGATE_SET_CURRENT_VERSION="false"
            )
            b = WorkerProcess(env, tmp_path / "b.log", root=b_root)
            try:
                await eventually(
                    lambda: describe(client, name),
                    ok=lambda d: build_b_id in [x.build_id for x in d.builds],
                    within=90,
                    interval=0.5,
                    what="build B polling",
                )
                code, out, err = await stepgate(
                    url, ADMIN_KEY, "versions", "set-current", build_b_id, "--json"
                )
                assert code == 0, err
                assert json.loads(out) == {
                    "deployment": name,
                    "build_id": build_b_id,
                    "previous_build_id": build_a,
                }

                fresh = await start(client, on, registry, FRESH)
                assert (await fresh.result()).output == "fresh"
                assert await pinned_to(client, fresh.id) == build_b_id
                assert await timer_summaries(fresh) == [json.dumps(B_TIMER).encode()]

                # docs/versioning.md's query for the runs a patch deployed at a moment still waits
                # on: those open on the build that started before it.
                started = (await parked.describe()).start_time
                for moment, found in ((started - timedelta(seconds=1), 0), (datetime.now(UTC), 1)):
                    query = (
                        f"TemporalWorkerDeploymentVersion = '{name}:{build_a}' AND ExecutionStatus"
                        f" = 'Running' AND StartTime < '{moment.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}'"
                    )
                    assert (await client.count_workflows(query)).count == found, query

                await decide(parked, "review", "approve")
                assert (await parked.result()).output == "parked"
                assert await pinned_to(client, parked.id) == build_a
                assert await pinned_to(client, f"{parked.id}--child") == build_a
                assert json.dumps(B_TIMER).encode() not in await timer_summaries(parked)

                async def listing() -> dict[str, Any]:
                    code, out, err = await stepgate(url, ADMIN_KEY, "versions", "--json")
                    assert code == 0, err
                    found: dict[str, Any] = json.loads(out)
                    return found

                drained = await eventually(
                    listing,
                    ok=lambda found: build_row(found, build_a)["status"] == "drained",
                    within=60,
                    interval=0.5,
                    what="build A drained",
                )
                assert drained["current_build_id"] == build_b_id
                assert drained["last_modified_by"] == "stepgate-api:root"
                assert build_row(drained, build_a)["open_runs"] == 0
                assert build_row(drained, build_a)["drained_since"] is not None
                assert build_row(drained, build_b_id)["status"] == "current"
                assert [b["build_id"] for b in drained["builds"]] == [build_b_id, build_a]

                code, out, err = await stepgate(url, ADMIN_KEY, "versions")
                assert code == 0, err
                lines = out.splitlines()
                assert lines[0] == f"deployment {name}: new runs start on {build_b_id}"
                assert lines[1].split() == ["BUILD", "STATUS", "CREATED", "OPEN", "RUNS"]
                assert lines[2].split()[:2] == [build_b_id, "current"]
                assert lines[3].split()[:2] == [build_a, "drained"] and lines[3].endswith(" 0")
                assert lines[4].startswith("(unversioned)")
            finally:
                assert b.stop() == 0, (tmp_path / "b.log").read_text(errors="replace")[-3000:]

        # A's workers are gone: the status query of a run that closed on A finds no worker.
        code, _, err = await stepgate(url, ADMIN_KEY, "status", parked.id)
        assert code == 1 and "worker_unavailable" in err, err


async def test_worker_with_set_current_takes_new_runs_at_start(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """`python worker.py` with STEPGATE_SET_CURRENT_VERSION (as `make run` starts it) makes its
    build current once it polls, so a run started on a fresh deployment needs no other step."""
    name = f"single-{uuid.uuid4().hex[:8]}"
    on = keyed(settings, tmp_path, name)
    env = worker_env(on, STEPGATE_DEPLOYMENT_NAME=name, STEPGATE_SET_CURRENT_VERSION="true")
    process = WorkerProcess(env, tmp_path / "worker.log")
    try:
        found = await eventually(
            lambda: describe(client, name),
            ok=lambda d: d.current_build_id is not None,
            within=90,
            interval=0.5,
            what="the worker's build current",
        )
        assert found.current_build_id == default_build_id()
        run = await start(client, on, default_registry(entry_points=False), FRESH)
        assert (await run.result()).output == "fresh"
        assert await pinned_to(client, run.id) == default_build_id()
    finally:
        assert process.stop() == 0, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert "this build is current" in (tmp_path / "worker.log").read_text()


CONTINUED = """
name: continued
steps:
  - id: gate
    tool: data.echo
    with: {value: continued}
    approval: {approvers: ["role:ops"], quorum: 2}
output: "${steps.gate.output.value}"
"""


async def test_continued_run_stays_on_its_build_after_another_became_current(
    small_history_env: WorkflowEnvironment, settings: Settings
) -> None:
    """A pinned run that continues-as-new (its history grew past what the server suggests)
    goes on on the build it started on although another build became current meanwhile: the
    new run inherits the pin (same task queue), and finishes there."""
    client = small_history_env.client
    name = f"continued-{uuid.uuid4().hex[:8]}"
    on = settings.model_copy(update={"stepgate_deployment_name": name})
    a, b = (
        deployment_config(on.model_copy(update={"stepgate_build_id": f"{x}-{name}"})) for x in "ab"
    )
    assert a is not None and b is not None
    registry = default_registry(entry_points=False)
    async with (
        build_worker(client, on, registry, deployment=a),
        build_worker(client, on, registry, deployment=b),
    ):
        await make_current_at_start(client, name, a.version.build_id, "test")
        run = await start(client, on, registry, CONTINUED)
        await open_gate(run, "gate")
        await decide(run, "gate", "approve", actor="alice")
        await make_current_at_start(client, name, b.version.build_id, "test")
        for i in range(80):  # refused votes, each one more event in history
            await run.signal(
                PipelineWorkflow.decide,
                {"gate": "gate", "action": "approve", "actor": f"x{i}", "roles": ["dev"]},
            )

        async def continued() -> int:
            return (await run.query(PipelineWorkflow.status)).continued

        await eventually(continued, what="continued as new")
        latest = await client.get_workflow_handle(run.id).describe()
        assert latest.run_id != run.result_run_id
        assert await pinned_to(client, run.id) == a.version.build_id
        latest_run = client.get_workflow_handle_for(PipelineWorkflow.run, run.id)
        await decide(latest_run, "gate", "approve", actor="bob")
        assert (await latest_run.result()).output == "continued"
        assert await pinned_to(client, run.id) == a.version.build_id


async def test_unversioned_runs_are_found_by_the_documented_query(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A run of an unversioned worker (what 0.1.x ran) is what docs/versioning.md's
    `temporal workflow list` query finds, what the listing counts as unversioned and what a
    versioned worker warns of at start (a pinned run is none of these: see the rollout test)."""
    doc = (ROOT / "docs" / "versioning.md").read_text()
    assert UNVERSIONED_OPEN_RUNS in re.findall(r'temporal workflow list --query "([^"]+)"', doc)
    registry = default_registry(entry_points=False)
    async with build_worker(client, settings, registry):
        run = await start(client, settings, registry, PARKED)
        await open_gate(run, "review")
        query = f"{UNVERSIONED_OPEN_RUNS} AND WorkflowId = '{run.id}'"
        out = await temporal(settings, "workflow", "list", "--query", query, "--output", "json")
        assert [r["execution"]["workflowId"] for r in json.loads(out)] == [run.id]
        assert (await describe(client, f"none-{uuid.uuid4().hex[:8]}")).unversioned_open_runs >= 1
        with capture_logs() as logs:
            await warn_of_unversioned_runs(client)
        assert [e["count"] >= 1 for e in logs if e["log_level"] == "warning"] == [True]
        await decide(run, "review", "approve")
        await run.result()
    out = await temporal(settings, "workflow", "list", "--query", query, "--output", "json")
    assert json.loads(out or "[]") == []


async def temporal(settings: Settings, *args: str) -> str:
    """The `temporal` CLI against the suite's server; its stdout."""
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(), *args, "--address", settings.temporal_address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_default_build_id_follows_the_workflow_code_only(tmp_path: Path) -> None:
    """The default build id is the package version plus a hash of the workflow code: an edit
    to a workflow module, a rule or a model it runs changes it; an edit to the API, the client
    plumbing, the catalog or a tool does not."""
    root = copy_code(tmp_path / "code")
    same = default_build_id(root)
    assert same == default_build_id() and same.startswith(f"{package_version()}+")
    outside = [
        "api/cli.py",
        "workflows/client.py",
        "workflows/language/catalog.py",
        "activities/tools/http.py",
    ]
    inside = ["workflows/pipeline.py", "workflows/rules/votes.py", "activities/models.py"]
    for rel in [*outside, *inside]:
        path = root / rel
        original = path.read_bytes()
        path.write_bytes(original + b"# an edit\n")
        assert (default_build_id(root) == same) == (rel in outside), rel
        path.write_bytes(original)
    assert default_build_id(root) == same


def test_build_id_setting_refuses_what_would_need_quoting() -> None:
    """STEPGATE_BUILD_ID names a version in queries: quotes, spaces and a leading `_` are
    refused, empty means the default."""
    assert Settings(stepgate_build_id="").stepgate_build_id is None
    assert Settings(stepgate_build_id="2026.12.07-a1b2").stepgate_build_id == "2026.12.07-a1b2"
    for bad in ("a'b", "a b", "__unversioned__", "x" * 129):
        with pytest.raises(ValidationError):
            Settings(stepgate_build_id=bad)
    with pytest.raises(ValidationError):
        Settings(stepgate_deployment_name="stepgate.prod")
