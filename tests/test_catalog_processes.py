"""The catalog in real processes: `python -m api` reloads on SIGHUP, and neither the API nor the
worker refuses to start over a bad definition file."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.support.procs import free_port
from tests.support.util import eventually
from tests.support.workers import ROOT, WorkerProcess, worker_env
from tests.test_catalog import pipeline, write
from worker import build_worker
from workflows.language.validation import validate_definition
from workflows.models import PipelineInput
from workflows.pipeline import PipelineWorkflow

KEY = "key-catalog-0123456789"
ApiProcess = tuple[str, Path, "subprocess.Popen[bytes]"]


def events(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines written so far (a line still being written is left for later)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


@pytest.fixture
def folder(settings: Settings) -> Path:
    """The definitions folder worker_env points the processes at: one good file, one broken."""
    path = settings.stepgate_data / "definitions"
    write(path, "good.yaml", pipeline("good"))
    write(path, "broken.yaml", "name: broken\nsteps: [\n")
    return path


def spawn_api(settings: Settings, tmp_path: Path) -> ApiProcess:
    """`python -m api` with no folder watch (only SIGHUP or the route reload): its URL, log file
    and process."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump([{"key": KEY, "principal": "vic", "roles": ["viewer"]}]))
    port = free_port()
    env = worker_env(
        settings,
        STEPGATE_API_PORT=str(port),
        STEPGATE_API_KEYS_FILE=str(keys),
        STEPGATE_CATALOG_POLL_S="0",
    )
    log = tmp_path / "api.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    return f"http://127.0.0.1:{port}", log, proc


@pytest.fixture
def api_process(settings: Settings, folder: Path, tmp_path: Path) -> Iterator[ApiProcess]:
    """The API as a process, which must still be running when the test ends."""
    url, log, proc = spawn_api(settings, tmp_path)
    try:
        yield url, log, proc
        assert proc.poll() is None, f"the API exited: {log.read_text()[-2000:]}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_api_process_reloads_catalog_on_sighup(api_process: ApiProcess, folder: Path) -> None:
    """The API starts over a broken file, and SIGHUP (not a watch: none runs) reloads the
    catalog while the process keeps serving."""
    url, log, proc = api_process
    auth = {"Authorization": f"Bearer {KEY}"}

    async def names(http: httpx.AsyncClient) -> set[str]:
        try:
            r = await http.get("/definitions", headers=auth)
        except httpx.TransportError:
            return set()  # not listening yet
        return {d["name"] for d in r.json()} if r.status_code == 200 else set()

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert await eventually(lambda: names(http), what="the API serving") == {"good"}
        r = await http.get("/definitions/errors", headers=auth)
        assert [e["file"] for e in r.json()["errors"]] == ["broken.yaml"]
        write(folder, "examples/later.yaml", pipeline("later"))
        proc.send_signal(signal.SIGHUP)
        await eventually(lambda: names(http), ok=lambda n: n == {"good", "later"}, what="reload")
    reloads = [e for e in events(log) if e.get("event") == "catalog loaded"]
    assert [e["reason"] for e in reloads] == ["start", "SIGHUP"]
    assert reloads[1]["added"] == ["later@1"]


async def test_worker_process_starts_with_a_bad_catalog_file(
    settings: Settings, folder: Path, tmp_path: Path
) -> None:
    """`python worker.py` logs the broken file and starts anyway, listing what did load."""
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_env(settings), log)
    try:
        started = await eventually(
            lambda: [e for e in events(log) if e.get("event") == "worker started"],
            what="the worker started",
            within=60,
        )
    finally:
        code = worker.stop()
    assert code == 0
    assert started[0]["pipelines"] == ["good@1"] and started[0]["catalog_errors"] == 1
    refused = [e for e in events(log) if e.get("event") == "catalog file refused"]
    assert [e["file"] for e in refused] == ["broken.yaml"]


async def test_api_process_stops_on_sigterm_with_a_live_stream_open(
    client: Client, settings: Settings, folder: Path, tmp_path: Path
) -> None:
    """SIGTERM ends `python -m api` within its grace even while an /events stream, which never
    finishes by itself, is open on a parked run (a rolling restart once waited for ever)."""
    url, log, proc = spawn_api(settings, tmp_path)
    registry = default_registry(entry_points=False)
    text = "name: parked\nsteps:\n  - {id: a, tool: data.echo, approval: {approvers: ['role:x']}}\n"
    report = validate_definition(yaml.safe_load(text), registry)
    assert report.definition is not None
    auth = {"Authorization": f"Bearer {KEY}"}
    async with build_worker(client, settings, registry):
        handle = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(definition=report.definition),
            id=f"parked-{uuid.uuid4().hex[:8]}",
            task_queue=settings.stepgate_task_queue,
        )
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def serving() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(serving, what="the API serving")
            async with http.stream("GET", f"/workflows/{handle.id}/events", headers=auth) as r:
                assert r.status_code == 200
                lines = r.aiter_lines()
                assert (await anext(lines)).startswith(("event:", "id:", "data:", "retry:"))
                proc.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.to_thread(proc.wait, 30)
                finally:
                    proc.kill()
        await handle.terminate("done")
    # uvicorn ends by raising the signal it stopped for again.
    assert code in (0, -signal.SIGTERM), log.read_text()[-2000:]
    assert "timeout graceful shutdown exceeded" in log.read_text()
