"""The API app served over real HTTP on a free loopback port, for tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from activities.config import Settings
from activities.registry import ToolRegistry
from api.app import create_app

ROOT = Path(__file__).resolve().parent.parent.parent


@contextlib.asynccontextmanager
async def serve_app(
    settings: Settings, registry: ToolRegistry, *, apps: list[FastAPI] | None = None
) -> AsyncIterator[str]:
    """Serve an app for `settings` on a free local port; yields its base URL. The app is
    appended to `apps` when given, for tests that look at its state."""
    app = create_app(settings, registry)
    if apps is not None:
        apps.append(app)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def cli_env(url: str, key: str) -> dict[str, str]:
    """The environment `stepgate` runs in as a user's would: STEPGATE_URL and STEPGATE_API_KEY
    set, no other STEPGATE_* variable, and Python's output buffered (no PYTHONUNBUFFERED), so
    what the client prints reaches a pipe only when it flushes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STEPGATE_") and k != "PYTHONUNBUFFERED"
    }
    env.update(STEPGATE_URL=url, STEPGATE_API_KEY=key)
    return env


async def stepgate(url: str, key: str, *args: str) -> tuple[int, str, str]:
    """`stepgate ARGS` (the terminal client, api/cli.py) as a real process against `url`:
    its exit code, stdout and stderr."""
    env = cli_env(url, key)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()
