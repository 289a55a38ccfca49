"""The memory of governed runs in its database: write (one row per run), search by text, delete.

Every statement is built from constants and bound parameters; a query's text reaches the
database only as words from `text.query_terms`, each one bound.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.config import Settings
from activities.memory.engine import backend_of, database_url, make_engine, prepare_folder
from activities.memory.migrate import migrate
from activities.memory.redact import redacted
from activities.memory.schema import patterns
from activities.memory.search import rows as ranked_rows
from activities.memory.text import query_terms, search_text
from activities.models import MemoryHit, MemoryPattern

log = structlog.get_logger("stepgate.memory")

# Error types, named once for the raising and the handling side.
MEMORY_UNAVAILABLE = "MemoryUnavailable"
MEMORY_PATTERN_TOO_LARGE = "MemoryPatternTooLarge"

# Largest pattern (its JSON) the memory keeps: a plan from the API is at most 1 MiB already.
MAX_PATTERN_BYTES = 1_048_576
# Largest sum of the patterns one search returns, under Temporal's 2 MiB payload limit: lower
# ranked hits past it are left out.
MAX_RESULT_BYTES = 1_572_864
MAX_WORKFLOW_ID_CHARS = 1_000
MAX_LIMIT = 100


class MemoryUnavailable(Exception):
    """The database could not be reached or did not do the work; a later attempt may succeed.
    The message names the failure's kind, never a statement, its parameters or the URL."""


class PatternTooLarge(ValueError):
    """A pattern over MAX_PATTERN_BYTES, or with an over-long workflow id: never stored."""


def describe(err: BaseException) -> str:
    """What went wrong, safe to show and log: SQLAlchemy's own text holds the statement and its
    parameters (pattern contents), so only the kinds of the error and its cause are named."""
    cause = getattr(err, "orig", None) or err.__cause__
    kinds = [type(err).__name__] + ([type(cause).__name__] if cause is not None else [])
    detail = ""
    for e in (err, cause):
        if isinstance(e, OSError) and not isinstance(e, TimeoutError):
            detail = f": {e.strerror or e}"[:200]
    return f"the memory database is unavailable ({' / '.join(kinds)}){detail}"


class MemoryStore:
    """One engine for the process; the schema is migrated at start or before first use."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.backend = backend_of(engine)
        self._migrated = False
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryStore:
        return cls(make_engine(database_url(settings)))

    async def start(self) -> bool:
        """Migrate now if the database answers; if not, say so and try again at first use."""
        try:
            await self.ready()
        except MemoryUnavailable as err:
            log.warning("memory database not ready; retrying at first use", error=str(err))
            return False
        log.info("memory database ready", backend=self.backend)
        return True

    async def ready(self) -> None:
        if self._migrated:
            return
        async with self._lock:
            if not self._migrated:
                await self._guard(asyncio.to_thread(prepare_folder, self.engine))
                await self._guard(migrate(self.engine))
                self._migrated = True

    async def close(self) -> None:
        await self.engine.dispose()

    async def write(self, pattern: MemoryPattern) -> int:
        """Store the run's pattern, replacing the one it wrote before; returns its id (the same
        id every time for one workflow id)."""
        values = await asyncio.to_thread(_row, pattern)
        await self.ready()
        row_id: int = await self._guard(
            self._scalar(self._upsert().returning(patterns.c.id), values)
        )
        log.debug("memory pattern written", workflow_id=pattern.workflow_id, id=row_id)
        return row_id

    async def write_many(self, batch: list[MemoryPattern]) -> None:
        """Store many patterns in one transaction, as `write` would one by one (imports, the
        bench)."""
        rows = await asyncio.to_thread(lambda: [_row(p) for p in batch])
        await self.ready()
        await self._guard(self._scalar(self._upsert(), rows))

    def _upsert(self) -> Any:
        insert = (postgresql if self.backend == "postgresql" else sqlite).insert(patterns)
        return insert.on_conflict_do_update(
            index_elements=[patterns.c.workflow_id],
            set_={k: insert.excluded[k] for k in _REPLACED},
        )

    async def search(self, q: str, limit: int) -> list[MemoryHit]:
        """The patterns closest to `q`, best first, at most `limit` (and MAX_RESULT_BYTES)."""
        terms = query_terms(q)
        if not terms:
            return []
        limit = max(1, min(limit, MAX_LIMIT))
        await self.ready()
        rows = await self._guard(self._rows(terms, limit))
        return await asyncio.to_thread(_hits, rows)

    async def delete(self, pattern_id: int) -> bool:
        """Forget one pattern; False when there is none with that id."""
        await self.ready()
        stmt = delete(patterns).where(patterns.c.id == pattern_id).returning(patterns.c.id)
        gone = await self._guard(self._scalar(stmt))
        return gone is not None

    async def _scalar(self, stmt: Any, params: Any = None) -> Any:
        async with self.engine.begin() as conn:
            result = await conn.execute(stmt, params)
            return result.scalar() if result.returns_rows else None

    async def _rows(self, terms: list[str], limit: int) -> list[Any]:
        return await ranked_rows(self.engine, self.backend, terms, limit)

    async def _guard(self, work: Any) -> Any:
        try:
            return await work
        except (SQLAlchemyError, OSError) as err:
            # `from None`: the cause's text holds the statement and its parameters.
            raise MemoryUnavailable(describe(err)) from None


# What a second write of one run replaces (its id and workflow id stay).
_REPLACED = ("created_at", "outcome", "doc", "body")


def _row(pattern: MemoryPattern) -> dict[str, Any]:
    pattern = redacted(pattern)  # whoever wrote it: stored and indexed as the status shows it
    body = pattern.model_dump_json()
    if len(body.encode()) > MAX_PATTERN_BYTES:
        raise PatternTooLarge(
            f"pattern of {pattern.workflow_id[:100]!r} is larger than {MAX_PATTERN_BYTES} bytes"
        )
    if len(pattern.workflow_id) > MAX_WORKFLOW_ID_CHARS:
        raise PatternTooLarge(f"workflow id longer than {MAX_WORKFLOW_ID_CHARS} characters")
    return {
        "workflow_id": pattern.workflow_id,
        "created_at": pattern.created_at,
        "outcome": pattern.outcome[:32],
        "doc": search_text(pattern),
        "body": body,
    }


def _hits(rows: list[Any]) -> list[MemoryHit]:
    hits: list[MemoryHit] = []
    size = 0
    for row_id, score, body in rows:
        size += len(body)
        if size > MAX_RESULT_BYTES:
            break
        # Masked again on the way out: a row a process older than the masking wrote during an
        # upgrade (migration 0002 masked the rows that were there before it).
        pattern = redacted(MemoryPattern.model_validate_json(body))
        hits.append(MemoryHit(id=row_id, score=float(score), pattern=pattern))
    return hits
