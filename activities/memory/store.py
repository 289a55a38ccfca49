"""The memory of governed runs in its database: write (one row per run), search by text, delete.

Every statement is built from constants and bound parameters; a query's text reaches the
database only as words from `text.query_terms`, each one bound.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import structlog
from sqlalchemy import ColumnElement, bindparam, delete, func, literal_column, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.config import Settings
from activities.memory.engine import backend_of, database_url, make_engine, prepare_folder
from activities.memory.migrate import migrate
from activities.memory.schema import FTS_TABLE, patterns
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
# A search ranks at most this many of the newest matching patterns: ranking costs per match,
# and a common word can match most of the table.
MAX_CANDIDATES = 2_000
PG_TEXT_CONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")


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
        body = await asyncio.to_thread(pattern.model_dump_json)
        if len(body.encode()) > MAX_PATTERN_BYTES:
            raise PatternTooLarge(
                f"pattern of {pattern.workflow_id[:100]!r} is larger than {MAX_PATTERN_BYTES} bytes"
            )
        if len(pattern.workflow_id) > MAX_WORKFLOW_ID_CHARS:
            raise PatternTooLarge(f"workflow id longer than {MAX_WORKFLOW_ID_CHARS} characters")
        values = {
            "workflow_id": pattern.workflow_id,
            "created_at": pattern.created_at,
            "outcome": pattern.outcome[:32],
            "doc": await asyncio.to_thread(search_text, pattern),
            "body": body,
        }
        insert = (postgresql if self.backend == "postgresql" else sqlite).insert(patterns)
        stmt = (
            insert.values(values)
            .on_conflict_do_update(
                index_elements=[patterns.c.workflow_id],
                set_={k: insert.excluded[k] for k in values if k != "workflow_id"},
            )
            .returning(patterns.c.id)
        )
        await self.ready()
        row_id: int = await self._guard(self._scalar(stmt))
        log.debug("memory pattern written", workflow_id=pattern.workflow_id, id=row_id)
        return row_id

    async def search(self, q: str, limit: int) -> list[MemoryHit]:
        """The patterns closest to `q`, best first, at most `limit` (and MAX_RESULT_BYTES)."""
        terms = query_terms(q)
        if not terms:
            return []
        limit = max(1, min(limit, MAX_LIMIT))
        stmt = self._pg_search(terms, limit) if self.backend == "postgresql" else None
        await self.ready()
        rows = await self._guard(self._rows(stmt, terms, limit))
        return await asyncio.to_thread(_hits, rows)

    async def delete(self, pattern_id: int) -> bool:
        """Forget one pattern; False when there is none with that id."""
        await self.ready()
        stmt = delete(patterns).where(patterns.c.id == pattern_id).returning(patterns.c.id)
        gone = await self._guard(self._scalar(stmt))
        return gone is not None

    async def _scalar(self, stmt: Any) -> Any:
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).scalar()

    async def _rows(self, stmt: Any, terms: list[str], limit: int) -> list[Any]:
        async with self.engine.connect() as conn:
            if stmt is None:
                result = await conn.execute(_SQLITE_SEARCH, _sqlite_params(terms, limit))
            else:
                result = await conn.execute(stmt)
            return list(result.all())

    def _pg_search(self, terms: list[str], limit: int) -> Any:
        # Each word is its own bound plainto_tsquery, OR-ed together: any word may match, and
        # patterns sharing more (and rarer) words rank higher.
        words: list[ColumnElement[Any]] = [
            func.plainto_tsquery(PG_TEXT_CONFIG, bindparam(f"t{i}", term))
            for i, term in enumerate(terms)
        ]
        query = functools.reduce(lambda a, b: a.op("||")(b), words)
        tsv: ColumnElement[Any] = literal_column("tsv")
        newest = (
            select(patterns.c.id, tsv)
            .where(tsv.op("@@")(query))
            .order_by(patterns.c.id.desc())
            .limit(MAX_CANDIDATES)
            .subquery()
        )
        score: ColumnElement[float] = func.ts_rank_cd(newest.c.tsv, query).label("score")
        ranked = (
            select(newest.c.id, score)
            .order_by(score.desc(), newest.c.id.desc())
            .limit(limit)
            .subquery()
        )
        return (
            select(ranked.c.id, ranked.c.score, patterns.c.body)
            .join(patterns, patterns.c.id == ranked.c.id)
            .order_by(ranked.c.score.desc(), ranked.c.id.desc())
        )

    async def _guard(self, work: Any) -> Any:
        try:
            return await work
        except (SQLAlchemyError, OSError) as err:
            # `from None`: the cause's text holds the statement and its parameters.
            raise MemoryUnavailable(describe(err)) from None


# FTS5 ranks with bm25 (lower is better, so the score is its negation). The MATCH expression is
# one bound parameter: each word quoted as an FTS5 string, joined by OR.
_SQLITE_SEARCH = text(
    f"""
    SELECT p.id, -c.rank AS score, p.body
    FROM (
        SELECT rowid AS id, bm25({FTS_TABLE}) AS rank FROM {FTS_TABLE}
        WHERE {FTS_TABLE} MATCH :match ORDER BY rowid DESC LIMIT :candidates
    ) AS c JOIN {patterns.name} AS p ON p.id = c.id
    ORDER BY c.rank, p.id DESC LIMIT :limit
    """
)


def _sqlite_params(terms: list[str], limit: int) -> dict[str, Any]:
    # Terms are letters and digits only (text.words), so a quote can never end the string.
    match = " OR ".join(f'"{term}"' for term in terms)
    return {"match": match, "candidates": MAX_CANDIDATES, "limit": limit}


def _hits(rows: list[Any]) -> list[MemoryHit]:
    hits: list[MemoryHit] = []
    size = 0
    for row_id, score, body in rows:
        size += len(body)
        if size > MAX_RESULT_BYTES:
            break
        pattern = MemoryPattern.model_validate_json(body)
        hits.append(MemoryHit(id=row_id, score=float(score), pattern=pattern))
    return hits
