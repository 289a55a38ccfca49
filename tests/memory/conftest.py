"""Memory tests: a fresh store on each backend (SQLite file, PostgreSQL database)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from activities.config import Settings
from activities.memory import MemoryStore
from activities.models import MemoryPattern


def memory_settings(tmp_path: Path, url: str | None) -> Settings:
    return Settings(
        stepgate_data=tmp_path / "data",
        stepgate_database_url=url,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def store(tmp_path: Path, memory_url: str | None) -> AsyncIterator[MemoryStore]:
    """A migrated, empty store on the parametrized backend."""
    store = MemoryStore.from_settings(memory_settings(tmp_path, memory_url))
    await store.ready()
    try:
        yield store
    finally:
        await store.close()


def pattern(workflow_id: str, request: str, **fields: Any) -> MemoryPattern:
    """A pattern as GovernedWorkflow writes one, with what the test cares about."""
    fields.setdefault("outcome", "completed")
    fields.setdefault("created_at", datetime(2026, 11, 1, tzinfo=UTC))
    return MemoryPattern(workflow_id=workflow_id, request=request, **fields)


# A governed run's context holding what its status masks (`db_password`, `api_token`, an
# `Authorization` header), and the pieces of those values a search would look for.
SECRET_CONTEXT = {
    "db_password": "hunter2zx9q",
    "api_token": "tok7f3kq",
    "headers": {"Authorization": "Bearer abc8w2m"},
    "service": "billing",
}
SECRET_WORDS = ("hunter2zx9q", "tok7f3kq", "abc8w2m")


def context_summary(context: dict[str, Any]) -> str:
    """The context summary as GovernedWorkflow writes it."""
    return json.dumps(context, sort_keys=True)[:2_000]
