"""Shared fixtures: one real Temporal dev server per test session, a fresh task queue per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.config import Settings
from tests.support.postgres import INSTALL_HINT, LocalPostgres, find_bin_dir
from workflows.client import make_data_converter
from workflows.contract import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
# Under `make mutation` every function call goes through mutmut's trampoline, several frames
# deep: expressions nested to exactly their depth limit would then overflow Python's default
# recursion limit, which they never reach uninstrumented.
if "MUTANT_UNDER_TEST" in os.environ:
    sys.setrecursionlimit(10_000)

# CI installs PostgreSQL and sets this, so memory tests fail there instead of skipping without it.
# Read at import: the suite clears STEPGATE_* variables around each test.
REQUIRE_POSTGRES = os.environ.get("STEPGATE_TEST_REQUIRE_POSTGRES") == "1"
# A second namespace on the session server, for tests that list everything they can see.
FUZZ_NAMESPACE = "stepgate-fuzz"
# A JVM (the time-skipping server) or a dev server with its Web UI may need longer on two busy
# cores than the SDK's 5 s default to answer.
TEST_SERVER_STARTUP = timedelta(seconds=60)
# The dev server puts every new timer (a durable wait, an activity's retry) at least this far
# ahead, 1 s by default: a 100 ms retry took a second. The tests' servers fire them on time.
TIMER_PRECISION = ["--dynamic-config-value", 'history.timerProcessorMaxTimeShift="10ms"']


# `make test-fast` runs `-m "not server"`. A test is `server` when its fixture closure holds one
# of these (directly or through `client`, `settings`, `worker`, `http`, ...) or when its
# `memory_url` is PostgreSQL; a test that starts a server, a worker or the API as a process of
# its own, which its fixtures cannot show, carries the mark itself (tests/test_markers.py checks).
SERVER_FIXTURES = frozenset({"temporal_env", "small_history_env", "time_skipping_env", "postgres"})
SERVER_PARAMS = {"memory_url": "postgresql"}


def needs_server(item: pytest.Item) -> bool:
    if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(params.get(name) == value for name, value in SERVER_PARAMS.items())


# Every test this session collected, before `-m` or `-k` deselected any (tests/test_markers.py).
COLLECTED = pytest.StashKey[list[pytest.Item]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks `server` before `-m` selects (tryfirst: ahead of pytest's own deselection)."""
    for item in items:
        if needs_server(item):
            item.add_marker(pytest.mark.server)
    config.stash[COLLECTED] = list(items)


# Worker Versioning needs no switch on this server; these make it check a build that stopped being
# current for open pinned runs after 1 s and then every second (default: 3 minutes each), so
# tests/test_versioning.py sees it drained within seconds.
VERSION_DRAINAGE_CHECKS = [
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"',
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
]


def temporal_cli() -> str:
    """The CLI that scripts/ensure-temporal provides (built once into the user cache)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "ensure-temporal")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def time_skipping_server() -> str:
    """The test-server launcher that scripts/ensure-test-server provides (fetched once into the
    user cache); its reasons for failing reach the test output on stderr."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "ensure-test-server")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_startup_timeout=TEST_SERVER_STARTUP,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(Settings()),
        dev_server_extra_args=[
            "--namespace",
            FUZZ_NAMESPACE,
            *VERSION_DRAINAGE_CHECKS,
            *TIMER_PRECISION,
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


# A dev server that suggests continue-as-new after a few events, so runs carry their state into a
# new run within a test instead of after thousands of events.
SMALL_HISTORY_EVENTS = 150


@pytest.fixture(scope="session")
async def small_history_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_startup_timeout=TEST_SERVER_STARTUP,
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=make_data_converter(Settings()),
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SMALL_HISTORY_EVENTS}",
            *TIMER_PRECISION,
        ],
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: timers fire as soon as nothing else can happen.

    Its clock is global, so tests that use it must not run workflows on it concurrently. It
    lacks visibility queries (listing workflows); search attributes need registering, as on a
    real server.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server(),
        data_converter=make_data_converter(Settings()),
        test_server_startup_timeout=TEST_SERVER_STARTUP,
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type)
                    for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


def server_settings(env: WorkflowEnvironment, task_queue: str, folder: Path) -> Settings:
    """Settings pointed at `env`'s server, on `task_queue`, with their folders under `folder`."""
    return Settings(
        temporal_address=env.client.service_client.config.target_host,
        stepgate_task_queue=task_queue,
        stepgate_data=folder / "data",
        stepgate_artifact_root=folder / "artifacts",
        # Tests serve tools from loopback; Temporal's own endpoints stay closed even so.
        stepgate_http_allow=["127.0.0.1"],
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def settings(tmp_path: Path, task_queue: str, temporal_env: WorkflowEnvironment) -> Settings:
    """Settings pointed at the session's dev server, a per-test queue and per-test folders."""
    return server_settings(temporal_env, task_queue, tmp_path)


@pytest.fixture(autouse=True)
def _no_ambient_stepgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's STEPGATE_* or TEMPORAL_* variables."""
    for key in list(os.environ):
        if key.startswith(("STEPGATE_", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One private PostgreSQL server per session (like the dev server), stopped at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"{INSTALL_HINT}; STEPGATE_TEST_REQUIRE_POSTGRES=1 asks for them")
        pytest.skip(INSTALL_HINT)
    # Not under pytest's folder: that one is private to this user, and the server runs as
    # `postgres` when the tests run as root.
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="stepgate-pg-")), bin_dir)
    try:
        server.start()
        yield server
    finally:
        if (server.data / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
async def memory_url(request: pytest.FixtureRequest) -> str | None:
    """STEPGATE_DATABASE_URL for a fresh, empty memory: unset (a SQLite file in the test's data
    folder), or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return None
    server: LocalPostgres = request.getfixturevalue("postgres")
    return await server.create_database()
