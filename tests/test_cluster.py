"""`make cluster` (scripts/cluster): the production topology on one machine, for real.

One test, since every start of it costs a cold Temporal server on a new PostgreSQL: the script
brings up PostgreSQL, the Temporal server 1.29.1 (advanced visibility in PostgreSQL), two
versioned workers and the API; a gated pipeline runs through the API, pinned to the workers'
build; Ctrl-C stops every process; then the controller (bench/cluster.py) starts the same data
again and a visibility query on a Stepgate search attribute still finds the finished run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from temporalio.api.enums.v1 import VersioningBehavior

from activities.memory.migrate import VERSION_TABLE
from bench.cluster import Cluster, Ports
from tests.conftest import REQUIRE_POSTGRES, ROOT
from tests.support.postgres import INSTALL_HINT, find_bin_dir
from tests.support.procs import free_port
from tests.support.util import eventually
from workflows.builds import default_build_id

BANNER_S = 300.0  # a cold server, schema and three Python processes on a busy two-core machine
RUN_ID = "cluster-report"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The cluster's STEPGATE_DATA, outside pytest's folder: that one is private to this user,
    and PostgreSQL runs as `postgres` when the tests run as root."""
    if find_bin_dir() is None:  # as the `postgres` fixture: required in CI, skipped elsewhere
        if REQUIRE_POSTGRES:
            pytest.fail(f"{INSTALL_HINT}; STEPGATE_TEST_REQUIRE_POSTGRES=1 asks for them")
        pytest.skip(INSTALL_HINT)
    folder = Path(tempfile.mkdtemp(prefix="stepgate-cluster-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def script_env(tmp_path: Path, data: Path, ports: Ports, api_port: int) -> dict[str, str]:
    stub = tmp_path / "bin"
    stub.mkdir()
    # The package is installed already (the test runs from it): `make -q install` says so.
    (stub / "make").write_text("#!/bin/sh\nexit 0\n")
    (stub / "make").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPGATE_")}
    env.update(
        PATH=f"{stub}{os.pathsep}{os.environ.get('PATH', '')}",
        STEPGATE_DATA=str(data),
        STEPGATE_LOG_LEVEL="WARNING",
        STEPGATE_CLUSTER_API_PORT=str(api_port),
    )
    for field in fields(ports):
        env[f"STEPGATE_CLUSTER_{field.name.upper()}_PORT"] = str(getattr(ports, field.name))
    return env


# Starts scripts/cluster: PostgreSQL, the Temporal server, `python worker.py` twice, `python -m api`.
@pytest.mark.server
async def test_cluster_runs_a_gated_pipeline_stops_on_ctrl_c_and_keeps_its_data(
    tmp_path: Path, data_dir: Path
) -> None:
    """scripts/cluster on free ports runs `approval_demo` to its gate and, once approved through
    the API, to completion, pinned to the workers' build; Ctrl-C stops it (status 130) with every
    process it started; a second start of the same data lists the run by StepgatePipeline, the
    governed memory's database is there (migrated by the workers) behind a generated password
    only, and PostgreSQL and Temporal listen on loopback alone."""
    ports, api_port = Ports.free(), free_port()
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = await asyncio.create_subprocess_exec(
            str(ROOT / "scripts" / "cluster"),
            cwd=ROOT,
            env=script_env(tmp_path, data_dir, ports, api_port),
            stdout=stdout,
            stderr=stderr,
        )
    try:

        def banner() -> str:
            assert proc.returncode is None, err.read_text()[-3000:]
            return out.read_text()

        text = await eventually(
            banner, ok=lambda t: "Admin key" in t, within=BANNER_S, interval=0.2, what="banner"
        )
        key = re.search(r"Admin key:\s+(\S+)", text)
        assert key is not None, text
        assert f"Temporal:    127.0.0.1:{ports.temporal} " in text, text
        assert f"http://localhost:{api_port}/ui" in text, text
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {key.group(1)}"},
            timeout=30.0,
        ) as http:
            started = await http.post(
                "/workflows",
                json={
                    "definition": "approval_demo",
                    "input": {"title": "Q3 report", "body": "All green."},
                    "workflow_id": RUN_ID,
                },
            )
            assert started.status_code == 201, started.text

            async def reaches(want: str) -> None:
                async def there() -> bool:
                    return bool((await http.get(f"/workflows/{RUN_ID}")).json()["state"] == want)

                await eventually(there, within=60, what=f"the run {want}")

            await reaches("waiting")
            decided = await http.post(
                f"/workflows/{RUN_ID}/gates/publish", json={"action": "approve"}
            )
            assert decided.status_code == 200, decided.text
            await reaches("completed")
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert len(tree) >= 5, [p.name() for p in tree]  # postgres, temporal, 2 workers, the API
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 120) == 130, err.read_text()[-3000:]
        _, alive = psutil.wait_procs(tree, timeout=10)
        assert alive == [], [(p.pid, p.name()) for p in alive]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async with Cluster(data_dir / "cluster", ports) as cluster:
        assert cluster.client is not None
        found = [
            (run.id, run.status and run.status.name)
            async for run in cluster.client.list_workflows(
                "StepgatePipeline = 'approval_demo' AND StepgateState = 'completed'"
            )
        ]
        assert found == [(RUN_ID, "COMPLETED")]
        described = await cluster.client.get_workflow_handle(RUN_ID).describe()
        versioning = described.raw_description.workflow_execution_info.versioning_info
        assert versioning.behavior == VersioningBehavior.VERSIONING_BEHAVIOR_PINNED
        assert versioning.deployment_version.build_id == default_build_id()
        memory = await asyncpg.connect(cluster.postgres_dsn)
        try:
            assert await memory.fetchval("SELECT to_regclass($1) IS NOT NULL", VERSION_TABLE)
        finally:
            await memory.close()
        admin = await asyncpg.connect(cluster.superuser_dsn)
        try:  # loopback only, no socket file: every login goes through a password
            assert await admin.fetchval("SHOW listen_addresses") == "127.0.0.1"
            assert await admin.fetchval("SHOW unix_socket_directories") == ""
        finally:
            await admin.close()
        # deploy/memory-db.sql's example password no longer opens the memory.
        example = cluster.postgres_dsn.replace(cluster.secrets["memory"], "stepgate")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(example)
        assert (data_dir / "cluster" / "secrets.json").stat().st_mode & 0o077 == 0
        assert (data_dir / "cluster" / "api-keys.yaml").stat().st_mode & 0o077 == 0
        assert cluster.server is not None
        listening = {
            c.laddr.ip
            for proc in cluster.server.tree()
            for c in proc.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}, listening


def test_cluster_with_a_taken_or_unusable_port_stops_before_anything_starts(
    tmp_path: Path,
) -> None:
    """A port already taken, or a Temporal port Temporal cannot keep (from 32768 up), stops
    scripts/cluster at once naming the setting; nothing is installed, built or written."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = Ports.free()
        env = script_env(tmp_path, tmp_path / "data", ports, port)
        (tmp_path / "bin" / "make").write_text(
            "#!/bin/sh\necho 'got past the checks' >&2\nexit 97\n"
        )
        done = subprocess.run(
            [str(ROOT / "scripts" / "cluster")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    assert f"port {port} (STEPGATE_CLUSTER_API_PORT) is taken by" in done.stderr
    env["STEPGATE_CLUSTER_API_PORT"] = str(free_port())
    env["STEPGATE_CLUSTER_HISTORY_PORT"] = "40000"
    done = subprocess.run(
        [str(ROOT / "scripts" / "cluster")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert (
        "STEPGATE_CLUSTER_HISTORY_PORT=40000: Temporal's ports must be below 32768" in done.stderr
    )
    assert not (tmp_path / "data").exists()
