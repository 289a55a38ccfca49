"""The memory of governed runs: patterns in SQLite (FTS5) or PostgreSQL (tsvector), searched by
text, migrated with Alembic at start."""

from __future__ import annotations

from activities.memory.activities import MemoryActivities
from activities.memory.store import (
    MAX_LIMIT,
    MEMORY_PATTERN_TOO_LARGE,
    MEMORY_UNAVAILABLE,
    MemoryStore,
    MemoryUnavailable,
    PatternTooLarge,
)

__all__ = [
    "MAX_LIMIT",
    "MEMORY_PATTERN_TOO_LARGE",
    "MEMORY_UNAVAILABLE",
    "MemoryActivities",
    "MemoryStore",
    "MemoryUnavailable",
    "PatternTooLarge",
]
