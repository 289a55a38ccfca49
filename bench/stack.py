"""Brings up the bench's own Temporal dev server, worker processes and API, on loopback only."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import psutil
import yaml
from temporalio.client import Client

from activities.config import Settings
from tests.support.procs import Child, Processes, free_port, wait_for
from workflows.client import TemporalUnreachable, make_client

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SERVER_READY_S = 60.0
WORKER_READY_S = 60.0
API_READY_S = 60.0
# The bench identity: the key of its API and the principal of every decision it sends.
APPROVER = "bench-approver"
APPROVER_ROLES = ["bench", "operator"]
# A second key that only reads, for what a viewer costs (the sse section's streams).
VIEWER = "bench-viewer"


# What the dev server keeps history in: `file` is the SQLite file `make run` uses (the bench's
# headline), `memory` keeps it in memory only (the second column: Stepgate without the disk).
Store = Literal["file", "memory"]
STORES: tuple[Store, ...] = ("file", "memory")


def temporal_cli() -> str:
    """The CLI that scripts/ensure-temporal provides (it may build it once, hence the long bound)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "ensure-temporal")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return out.stdout.strip()


@dataclass
class Stack:
    """What the sections run against; `task_queue` is fresh per bench run."""

    procs: Processes
    workdir: Path
    address: str
    client: Client
    env: dict[str, str]
    task_queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    server: Child | None = None
    # Processes the server needs, counted in the CPU figures beside it (the cluster's PostgreSQL).
    services: list[Child] = field(default_factory=list)
    workers: list[Child] = field(default_factory=list)
    api: Child | None = None
    api_url: str | None = None
    api_key: str | None = None
    viewer_key: str | None = None
    # The source tree the worker and API processes run from: another revision's export can be
    # measured with this revision's bench (python puts the working directory first on sys.path).
    tree: Path = ROOT


def child_env(workdir: Path, address: str) -> dict[str, str]:
    """The environment every child gets: our server, private folders, quiet logs."""
    env = dict(os.environ)
    env.update(
        TEMPORAL_ADDRESS=address,
        TEMPORAL_NAMESPACE="default",
        STEPGATE_ENV="development",
        STEPGATE_DATA=str(workdir / "data"),
        # An empty catalog: the bench starts runs from inline definitions only, so a catalog file
        # someone is editing cannot stop the API from starting.
        STEPGATE_DEFINITIONS_DIR=str(workdir / "definitions"),
        STEPGATE_LOG_LEVEL="WARNING",
        STEPGATE_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    return env


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU used so far by each running child and by the bench itself."""
    children = [
        c for c in (stack.server, *stack.services, *stack.workers, stack.api) if c is not None
    ]
    used = {c.name: c.cpu_seconds() for c in children}
    own = psutil.Process().cpu_times()
    used["bench"] = float(own.user + own.system)
    return used


async def start_server(
    procs: Processes,
    workdir: Path,
    *,
    store: Store = "file",
    port: int | None = None,
    name: str = "temporal",
    config: Mapping[str, object] | None = None,
) -> tuple[Child, str, Client]:
    """scripts/dev-server on loopback, as `make run` starts it, with its data in `workdir`
    (drills restart it on the same folder and port to prove nothing is lost). `config`: dynamic
    config on top of the script's."""
    port = port or free_port()
    env = {
        **os.environ,
        "TEMPORAL_CLI": temporal_cli(),
        "TEMPORAL_STORE": store,
        "STEPGATE_DATA": str(workdir),
        "TEMPORAL_IP": HOST,
        "TEMPORAL_PORT": str(port),
        "TEMPORAL_UI_PORT": str(free_port()),
        "TEMPORAL_HTTP_PORT": str(free_port()),
        "TEMPORAL_LOG_LEVEL": "error",
    }
    argv = [str(ROOT / "scripts" / "dev-server")]
    for key, value in (config or {}).items():
        argv += ["--dynamic-config-value", f"{key}={value}"]
    child = procs.spawn(name, argv, env, ROOT)
    address = f"{HOST}:{port}"
    return child, address, await connect(child, Settings(temporal_address=address))


async def connect(server: Child, settings: Settings, ready_s: float = SERVER_READY_S) -> Client:
    """A client of the Temporal server `server` runs, once its frontend answers (or an error
    naming what it waited for when the process ends or `ready_s` passes)."""
    clients: list[Client] = []

    async def connected() -> bool:
        try:
            clients.append(await make_client(settings, wait_s=0.5))
        except TemporalUnreachable:
            return False
        return True

    await wait_for(server, connected, ready_s, "Temporal frontend")
    return clients[0]


def server_argv(server: Child | None) -> list[str]:
    """The command line of the Temporal server the script started: what was measured, exactly."""
    if server is None:
        return []
    for proc in psutil.Process(server.pid).children(recursive=True):
        argv = proc.cmdline()
        if argv[1:3] == ["server", "start-dev"]:
            return argv
    return []


async def open_stack(
    procs: Processes,
    workdir: Path,
    *,
    store: Store = "file",
    config: Mapping[str, object] | None = None,
    tree: Path = ROOT,
) -> Stack:
    """A dev server started in `workdir` (see start_server) and the Stack around it; workers and
    the API are the caller's to start."""
    child, address, client = await start_server(procs, workdir, store=store, config=config)
    return Stack(
        procs=procs,
        workdir=workdir,
        address=address,
        client=client,
        env=child_env(workdir, address),
        server=child,
        tree=tree,
    )


async def start_worker(stack: Stack, name: str) -> Child:
    ready = stack.workdir / f"{name}.ready"
    env = {**stack.env, "STEPGATE_TASK_QUEUE": stack.task_queue}
    argv = [sys.executable, "-m", "bench.worker", "--ready-file", str(ready)]
    child = stack.procs.spawn(name, argv, env, stack.tree)

    async def polling() -> bool:
        return ready.exists()

    await wait_for(child, polling, WORKER_READY_S, "worker ready file")
    stack.workers.append(child)
    return child


async def stop_worker(stack: Stack, child: Child) -> None:
    # Stopping waits for the worker to drain; off the event loop, so nothing else stalls meanwhile.
    await asyncio.to_thread(stack.procs.stop, child)
    stack.workers.remove(child)


async def start_api(stack: Stack) -> None:
    """`python -m api` with its own keys file and port; sets stack.api_url when it answers."""
    port = free_port()
    key, viewer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    keys_file = stack.workdir / "api-keys.yaml"
    keys_file.write_text(
        yaml.safe_dump(
            [
                {"key": key, "principal": APPROVER, "roles": APPROVER_ROLES},
                {"key": viewer, "principal": VIEWER, "roles": ["viewer"]},
            ]
        )
    )
    keys_file.chmod(0o600)
    env = {
        **stack.env,
        "STEPGATE_TASK_QUEUE": stack.task_queue,
        "STEPGATE_API_HOST": HOST,
        "STEPGATE_API_PORT": str(port),
        "STEPGATE_API_KEYS_FILE": str(keys_file),
        # The bench sends everything with one key: the per-key request rate would measure
        # itself, and the SSE section holds more streams than one key may by default.
        "STEPGATE_RATE_PER_S": "0",
        "STEPGATE_STREAMS_PER_KEY": "1000",
    }
    child, url = await spawn_api(stack.procs, env, port, cwd=stack.tree)
    stack.api, stack.api_url, stack.api_key, stack.viewer_key = child, url, key, viewer


async def spawn_api(
    procs: Processes, env: dict[str, str], port: int, *, cwd: Path = ROOT, name: str = "api"
) -> tuple[Child, str]:
    """`python -m api` on `port`, run from the tree `cwd`; returns once /healthz answers 200."""
    child = procs.spawn(name, [sys.executable, "-m", "api"], env, cwd)
    url = f"http://{HOST}:{port}"

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as http:
                return (await http.get(f"{url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(child, healthy, API_READY_S, "200 from /healthz")
    return child, url
