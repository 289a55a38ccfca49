"""Real worker processes migrate the memory at start, safely when several start at once."""

from __future__ import annotations

from pathlib import Path

from activities.config import Settings
from activities.memory import MemoryStore
from activities.memory.migrate import current_revision, head
from tests.support.util import eventually
from tests.support.workers import WorkerProcess, worker_env


def said(log: Path, *lines: str) -> bool:
    text = log.read_text(errors="replace")
    return any(line in text for line in lines)


async def test_workers_starting_together_migrate_once(
    settings: Settings, tmp_path: Path, memory_url: str | None
) -> None:
    """Two `python worker.py` started at the same moment on an empty database both migrate
    under the lock without error, report the memory ready, and leave it at the newest revision."""
    extra = {"STEPGATE_DATABASE_URL": memory_url} if memory_url else {}
    env = worker_env(settings, **extra)
    logs = [tmp_path / f"worker{n}.log" for n in (1, 2)]
    workers = [WorkerProcess(env, log) for log in logs]
    try:
        for log in logs:
            await eventually(
                lambda log=log: said(log, "worker started", "startup refused", "Traceback"),
                within=90,
                what=f"{log.name} started",
            )
    finally:
        codes = [w.stop() for w in workers]
    for log in logs:
        text = log.read_text(errors="replace")
        assert "memory database ready" in text, text[-3000:]
    assert codes == [0, 0], [log.read_text(errors="replace")[-2000:] for log in logs]
    store = MemoryStore.from_settings(
        settings.model_copy(update={"stepgate_database_url": memory_url})
    )
    try:
        assert await current_revision(store.engine) == head()
    finally:
        await store.close()
