"""API tests: the real dev server, a real worker and the app served over real HTTP."""

from __future__ import annotations

import contextlib
import functools
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from activities.registry import ToolRegistry
from tests.conftest import ROOT
from tests.support.api import serve_app
from tests.support.fakes import blob, echo, fail, sleep
from worker import build_worker

KEYS = {
    "root": ("key-root-0123456789", ["admin"]),
    "olga": ("key-olga-0123456789", ["operator"]),
    "vic": ("key-vic-0123456789", ["viewer"]),
}

Serve = Callable[..., contextlib.AbstractAsyncContextManager[str]]


@pytest.fixture
def team() -> str:
    """A role unique to the test, so inbox and visibility assertions see only this test's runs."""
    return f"team{uuid.uuid4().hex[:10]}"


def write_keys(path: Path, team: str) -> dict[str, str]:
    """Writes the keys file; principal -> key. alice, bob and carol approve for `team`, alice
    also reads, bob is also an operator, carol only approves (no permission at all)."""
    entries = {
        **KEYS,
        "alice": ("key-alice-0123456789", [team, "viewer"]),
        "bob": ("key-bob-0123456789", [team, "operator"]),
        "carol": ("key-carol-0123456789", [team]),
    }
    path.write_text(
        yaml.safe_dump([{"key": k, "principal": p, "roles": r} for p, (k, r) in entries.items()])
    )
    return {p: k for p, (k, _) in entries.items()}


@pytest.fixture
def keys(tmp_path: Path, team: str) -> dict[str, str]:
    """Principal -> key, from tmp_path/keys.yaml (write_keys)."""
    return write_keys(tmp_path / "keys.yaml", team)


@pytest.fixture
def as_(keys: dict[str, str]) -> Callable[[str], dict[str, str]]:
    """Headers that authenticate as the named principal."""
    return lambda who: {"Authorization": f"Bearer {keys[who]}"}


GATED = """
name: gated
version: 1
input:
  type: object
  required: [ref]
  properties: {ref: {type: string}}
steps:
  - id: prepare
    tool: test.echo
    with: {ref: "${input.ref}"}
  - id: release
    needs: [prepare]
    tool: test.sleep
    with: {seconds: 1.0}
    approval:
      stage: before
      approvers: ["role:TEAM"]
      review: release it?
"""


def copy_definitions(folder: Path, team: str) -> Path:
    """The shipped catalog (examples included) plus `gated`, whose gate `team` decides."""
    shutil.copytree(ROOT / "definitions", folder)
    (folder / "gated.yaml").write_text(GATED.replace("TEAM", team))
    return folder


@pytest.fixture
def definitions(tmp_path: Path, team: str) -> Path:
    return copy_definitions(tmp_path / "definitions", team)


@pytest.fixture
def api_settings(
    settings: Settings, tmp_path: Path, keys: dict[str, str], definitions: Path
) -> Settings:
    return settings.model_copy(
        update={
            "stepgate_api_keys_file": tmp_path / "keys.yaml",
            "stepgate_definitions_dir": definitions,
        }
    )


def api_registry() -> ToolRegistry:
    """The built-in tools and the fakes the API tests' definitions name."""
    tools = default_registry(entry_points=False)
    for t in (echo, sleep, fail, blob):
        tools.add(t)
    return tools


@pytest.fixture
def registry() -> ToolRegistry:
    return api_registry()


@pytest.fixture
async def worker(
    client: Client, api_settings: Settings, registry: ToolRegistry
) -> AsyncIterator[None]:
    async with build_worker(client, api_settings, registry):
        yield


@pytest.fixture
def serve(registry: ToolRegistry) -> Serve:
    """Serve an app for `settings` on a free local port; yields its base URL."""
    return functools.partial(serve_app, registry=registry)


@pytest.fixture
async def http(
    serve: Serve, api_settings: Settings, worker: None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API, with a worker running the test's task queue."""
    async with serve(api_settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


StartRun = Callable[..., Any]


@pytest.fixture
def start_run(http: httpx.AsyncClient, as_: Callable[[str], dict[str, str]]) -> StartRun:
    """POST /workflows as an operator; returns the workflow id."""

    async def go(
        definition: Any = "gated",
        inp: dict[str, Any] | None = None,
        who: str = "olga",
        **extra: Any,
    ) -> str:
        r = await http.post(
            "/workflows",
            json={"definition": definition, "input": inp or {"ref": "main"}, **extra},
            headers=as_(who),
        )
        assert r.status_code == 201, r.text
        workflow_id: str = r.json()["workflow_id"]
        return workflow_id

    return go
