"""The memory's activities, built once per worker with its store (like ToolActivities)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from activities.config import Settings
from activities.errors import fatal, transient
from activities.memory.store import (
    MEMORY_PATTERN_TOO_LARGE,
    MEMORY_UNAVAILABLE,
    MemoryStore,
    MemoryUnavailable,
    PatternTooLarge,
)
from activities.models import (
    MEMORY_SEARCH_ACTIVITY,
    MEMORY_WRITE_ACTIVITY,
    MemoryPattern,
    MemorySearch,
    MemorySearchResult,
)


class MemoryActivities:
    """`stepgate.memory.write` and `stepgate.memory.search` over one store. A database that is
    down is a retryable failure of either (the caller's retry policy decides how long to wait);
    neither logs what a pattern holds."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryActivities:
        return cls(MemoryStore.from_settings(settings))

    def activities(self) -> Sequence[Callable[..., Any]]:
        return [self.write, self.search]

    @activity.defn(name=MEMORY_WRITE_ACTIVITY)
    async def write(self, pattern: MemoryPattern) -> int:
        """Remember one governed run; a retried write replaces the row, and returns its id."""
        try:
            return await self.store.write(pattern)
        except MemoryUnavailable as err:
            raise transient(str(err), MEMORY_UNAVAILABLE) from None
        except PatternTooLarge as err:
            raise fatal(str(err), MEMORY_PATTERN_TOO_LARGE) from None

    @activity.defn(name=MEMORY_SEARCH_ACTIVITY)
    async def search(self, search: MemorySearch) -> MemorySearchResult:
        """The past runs most similar to `search.q`, best first."""
        try:
            return MemorySearchResult(hits=await self.store.search(search.q, search.limit))
        except MemoryUnavailable as err:
            raise transient(str(err), MEMORY_UNAVAILABLE) from None
