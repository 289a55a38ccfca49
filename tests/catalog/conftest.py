"""Catalog tests: the shipped catalog served by the API over real HTTP, a real worker with the
built-in tools, the real toolchains through shell.run, and a scripted OpenAI-compatible model
on loopback (tests/catalog/model.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from activities.tools._shell_policy import FIXED_PATH
from tests.catalog.model import CatalogModel
from tests.conftest import ROOT
from tests.support.api import serve_app
from tests.support.util import eventually
from tests.tools.conftest import acts, make_acts, server, tool_settings
from worker import build_worker

# Who decides which phase: one role per stage, so a test shows each gate names its own people.
PEOPLE = {
    "root": ("key-root-0123456789", ["admin"]),
    "olga": ("key-olga-0123456789", ["operator"]),
    "vic": ("key-vic-0123456789", ["viewer"]),
    "ada": ("key-ada-0123456789", ["architects", "viewer"]),
    "dev": ("key-dev-0123456789", ["developers", "viewer"]),
    "rev": ("key-rev-0123456789", ["reviewers", "viewer"]),
    "rel": ("key-rel-0123456789", ["release", "viewer"]),
    "lea": ("key-lea-0123456789", ["lead", "viewer"]),
}
# The programs the catalog's build steps run.
TOOLCHAIN = ["javac", "java", "node", "bash"]
CLOSED = ("completed", "failed", "cancelled")
# CI installs the toolchains and sets this, so a missing one fails there instead of skipping.
# Read at import: the suite clears STEPGATE_* variables around each test.
REQUIRE_TOOLCHAINS = os.environ.get("STEPGATE_TEST_REQUIRE_TOOLCHAINS") == "1"


def need_toolchains() -> None:
    """Skip (or fail, in CI) unless every program the catalog's builds run is installed."""
    missing = [p for p in TOOLCHAIN if shutil.which(p, path=FIXED_PATH) is None]
    if missing:
        why = f"{', '.join(missing)} not installed (a JDK and Node.js run the catalog's builds)"
        if REQUIRE_TOOLCHAINS:
            pytest.fail(f"{why}, and STEPGATE_TEST_REQUIRE_TOOLCHAINS=1")
        pytest.skip(why)


Auth = Callable[[str], dict[str, str]]
# Direct tool calls (the attack tests of the catalog's tools) use the tool tests' fixtures.
__all__ = ["acts", "make_acts", "server", "tool_settings"]


@pytest.fixture
def as_() -> Auth:
    return lambda who: {"Authorization": f"Bearer {PEOPLE[who][0]}"}


@pytest.fixture
def workspace_root() -> Iterator[Path]:
    """An artifact root every user may enter: the tests run as root, and shell.run hands its
    programs to nobody, whom pytest's own temporary folders keep out."""
    path = Path(tempfile.mkdtemp(prefix="stepgate-catalog-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def model() -> Iterator[CatalogModel]:
    found = CatalogModel()
    found.server.start()
    yield found
    found.server.stop()


@pytest.fixture
def catalog_settings(
    settings: Settings, tmp_path: Path, workspace_root: Path, model: CatalogModel
) -> Settings:
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        yaml.safe_dump([{"key": k, "principal": p, "roles": r} for p, (k, r) in PEOPLE.items()])
    )
    return settings.model_copy(
        update={
            "stepgate_api_keys_file": keys,
            "stepgate_definitions_dir": ROOT / "definitions",
            "stepgate_artifact_root": workspace_root / "artifacts",
            "stepgate_shell_allow": TOOLCHAIN,
            "stepgate_llm_base_url": model.server.url("/v1/"),
            "stepgate_llm_model": "scripted-1",
        }
    )


@pytest.fixture
async def api(client: Client, catalog_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API over the shipped catalog, with a worker on the test's queue."""
    need_toolchains()
    registry = default_registry(entry_points=False)
    async with build_worker(client, catalog_settings, registry):
        async with serve_app(catalog_settings, registry) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield http


async def start(
    http: httpx.AsyncClient, auth: dict[str, str], definition: str, inp: Any, **extra: Any
) -> str:
    r = await http.post(
        "/workflows", json={"definition": definition, "input": inp, **extra}, headers=auth
    )
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow_id"]
    return workflow_id


async def status(http: httpx.AsyncClient, workflow_id: str, auth: dict[str, str]) -> Any:
    r = await http.get(f"/workflows/{workflow_id}", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


async def gate_open(
    http: httpx.AsyncClient, workflow_id: str, gate: str, auth: dict[str, str], after: int = -1
) -> Any:
    """The status once `gate` is open in a round past `after`; fails if the run closes first."""

    def ready(s: Any) -> bool:
        if s["state"] in CLOSED:
            raise AssertionError(
                f"{workflow_id} closed as {s['state']} before {gate}: {s['error']}"
            )
        return any(g["gate"] == gate and g["round"] > after for g in s["open_gates"])

    return await eventually(
        lambda: status(http, workflow_id, auth), ok=ready, what=f"gate {gate}", within=90
    )


def the_gate(s: Any, gate: str) -> Any:
    return next(g for g in s["open_gates"] if g["gate"] == gate)


async def decide(
    http: httpx.AsyncClient,
    workflow_id: str,
    gate: Any,
    auth: dict[str, str],
    action: str,
    **more: Any,
) -> httpx.Response:
    return await http.post(
        f"/workflows/{workflow_id}/gates/{gate['gate']}",
        json={"action": action, "digest": gate["digest"], **more},
        headers=auth,
    )


async def closed(http: httpx.AsyncClient, workflow_id: str, auth: dict[str, str]) -> Any:
    return await eventually(
        lambda: status(http, workflow_id, auth),
        ok=lambda s: s["state"] in CLOSED,
        what=f"{workflow_id} to close",
        within=120,
    )


def phases(s: Any) -> dict[str, dict[str, str]]:
    """The status's steps by phase (the prefix of their ids: spec_, code_, review, build_)."""
    found: dict[str, dict[str, str]] = {}
    for step in s["steps"]:
        found.setdefault(step["id"].split("_")[0], {})[step["id"]] = step["state"]
    return found
