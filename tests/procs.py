"""Real processes and loopback servers for durability tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from activities.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGATE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS=settings.temporal_address,
        STEPGATE_TASK_QUEUE=settings.stepgate_task_queue,
        STEPGATE_DATA=str(settings.stepgate_data),
        STEPGATE_ARTIFACT_ROOT=str(settings.artifact_root),
        STEPGATE_DEFINITIONS_DIR=str(settings.stepgate_data / "definitions"),
        STEPGATE_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """`python worker.py` as a real child process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=self.log,
        )

    def kill(self) -> None:
        """SIGKILL: no draining, no goodbye, as a crash or an OOM kill would do."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


class Ledger:
    """A loopback service that applies a side effect once per Idempotency-Key.

    The first request for a key can be held until the test releases it, so a worker can be
    killed while the call is in flight (the side effect still lands, as in real life).
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.applied: dict[str, Any] = {}
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        self._lock = threading.Lock()

    def handle(self, key: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(key)
            first = len([k for k in self.requests if k == key]) == 1
        if first:
            self.arrived.set()
            self.hold.wait(timeout=30)
        with self._lock:
            if key not in self.applied:
                self.applied[key] = {"entry": body, "n": len(self.applied) + 1}
            return 200, self.applied[key]


@contextmanager
def serve_ledger() -> Iterator[tuple[Ledger, str]]:
    ledger = Ledger()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            status, payload = ledger.handle(self.headers.get("Idempotency-Key", ""), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller died mid-request; the side effect is already recorded

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ledger, f"http://127.0.0.1:{server.server_address[1]}/ledger"
    finally:
        ledger.hold.set()
        server.shutdown()
        server.server_close()
