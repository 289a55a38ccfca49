"""Stepgate's search attributes are registered wherever a server is set up, and a worker refuses
to start in a namespace that lacks one (its runs would fail every workflow task upserting it)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from tests.conftest import ROOT
from tests.support.util import eventually
from worker import missing_search_attributes
from workflows.contract import SEARCH_ATTRIBUTES


def test_every_script_registers_every_search_attribute() -> None:
    """scripts/register-search-attributes (the compose stack's setup job too) and
    scripts/dev-server register exactly the contract's search attributes with their types."""
    expected = {
        (key.name, key.indexed_value_type.name.replace("_", "").lower())
        for key in SEARCH_ATTRIBUTES
    }
    assert "StepgatePriority" in {name for name, _ in expected}
    for script in ("register-search-attributes", "dev-server"):
        text = (ROOT / "scripts" / script).read_text("utf-8")
        found = {(name, kind.lower()) for name, kind in re.findall(r"(Stepgate\w+)=(\w+)", text)}
        assert found == expected, script


@pytest.mark.server  # starts `python worker.py`
async def test_a_worker_refuses_a_namespace_without_stepgates_search_attributes(
    temporal_env: WorkflowEnvironment,
) -> None:
    """In the session's namespace nothing is missing; in a namespace registered bare every
    Stepgate attribute is, and `python worker.py` there exits 3 naming them instead of polling."""
    assert await missing_search_attributes(temporal_env.client) == []
    namespace = f"bare-{uuid.uuid4().hex[:8]}"
    await temporal_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86_400)
        )
    )
    address = temporal_env.client.service_client.config.target_host
    bare = await Client.connect(address, namespace=namespace)

    async def listed() -> list[str] | None:
        try:
            return await missing_search_attributes(bare)
        except RPCError:
            return None

    missing = await eventually(listed, ok=lambda m: m is not None, what="namespace served")
    assert [m.split()[0] for m in missing or []] == [k.name for k in SEARCH_ATTRIBUTES]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGATE_", "TEMPORAL_"))}
    env.update(TEMPORAL_ADDRESS=address, TEMPORAL_NAMESPACE=namespace, STEPGATE_LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "worker.py", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    stderr = err.decode()
    assert proc.returncode == 3, stderr[-2000:]
    assert "search attributes not registered" in stderr
    assert "StepgatePriority" in stderr
