"""Real processes and loopback servers for durability tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from activities.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPGATE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS=settings.temporal_address,
        STEPGATE_TASK_QUEUE=settings.stepgate_task_queue,
        STEPGATE_DATA=str(settings.stepgate_data),
        STEPGATE_ARTIFACT_ROOT=str(settings.artifact_root),
        STEPGATE_DEFINITIONS_DIR=str(settings.stepgate_data / "definitions"),
        STEPGATE_HTTP_ALLOW=",".join(settings.stepgate_http_allow),
        STEPGATE_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
        # A deployment of the test's own, its build made current at start as `make run` does:
        # the suite's tests share one dev server, where another test's current build of the
        # deployment `stepgate` would otherwise take this queue's workflow tasks.
        STEPGATE_DEPLOYMENT_NAME=f"test-{settings.stepgate_task_queue[-12:]}",
        STEPGATE_SET_CURRENT_VERSION="true",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """`python worker.py` as a real child process; from another copy of the code with `root`
    (its own folder comes first on the import path)."""

    def __init__(self, env: dict[str, str], log: Path, root: Path = ROOT) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(root / "worker.py")],
            cwd=root,
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
