"""The searches of each backend: every word bound, ranked by the backend's own measure.

Patterns holding every word of the query come first, then patterns holding any of them. Each
kind is looked for among at most MAX_CANDIDATES of the newest matching patterns: ranking costs
per match, and a common word can match most of the table, while a pattern holding every word is
still found when thousands of newer ones share only one.

On SQLite the two kinds are two FTS5 queries, and each costs about as much as the other: both
read every query word's whole list of patterns (to intersect them, and for bm25's weight of each
word). They run at once, each on a connection (and thread) of its own, so a search takes about
as long as the slower one instead of both in turn.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.memory.engine import Backend
from activities.memory.schema import FTS_TABLE, patterns

MAX_CANDIDATES = 200
PG_TEXT_CONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")

# FTS5 ranks with bm25 (lower is better, so the score is its negation); the MATCH expression is
# one bound parameter. bm25 sums over the query's words whether they are joined by AND or OR, so
# the scores of both passes compare.
_SQLITE = text(
    f"""
    SELECT p.id, -c.rank AS score, p.body
    FROM (
        SELECT rowid AS id, bm25({FTS_TABLE}) AS rank FROM {FTS_TABLE}
        WHERE {FTS_TABLE} MATCH :match ORDER BY rowid DESC LIMIT :candidates
    ) AS c JOIN {patterns.name} AS p ON p.id = c.id
    ORDER BY c.rank, p.id DESC LIMIT :limit
    """
)


async def rows(
    engine: AsyncEngine, backend: Backend, terms: list[str], limit: int
) -> list[Row[Any]]:
    """At most `limit` rows (id, score, body): patterns holding every one of `terms` first, best
    first, then patterns holding some of them."""
    if backend == "postgresql":
        async with engine.connect() as conn:
            # A read needs no transaction: no BEGIN and ROLLBACK around it.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # One statement, one round trip: under load each trip waits for the server's turn.
            return list((await conn.execute(_postgres(terms, limit))).all())
    if len(terms) == 1:  # every word is some word
        return await _sqlite_pass(engine, terms, limit, every=True)
    found, some = await asyncio.gather(
        _sqlite_pass(engine, terms, limit, every=True),
        _sqlite_pass(engine, terms, limit, every=False),
    )
    seen = {row[0] for row in found}
    return (found + [row for row in some if row[0] not in seen])[:limit]


async def _sqlite_pass(
    engine: AsyncEngine, terms: list[str], limit: int, *, every: bool
) -> list[Row[Any]]:
    async with engine.connect() as conn:
        return list((await conn.execute(_SQLITE, _sqlite_params(terms, limit, every=every))).all())


def _sqlite_params(terms: list[str], limit: int, *, every: bool) -> dict[str, Any]:
    # Terms are letters and digits only (text.words), so a quote can never end an FTS5 string,
    # and AND/OR/NEAR inside one are words.
    match = (" AND " if every else " OR ").join(f'"{term}"' for term in terms)
    return {"match": match, "candidates": MAX_CANDIDATES, "limit": limit}


def _postgres(terms: list[str], limit: int) -> Any:
    # Each word is its own bound plainto_tsquery (which never fails on any text), joined with
    # the tsquery operators && (every word) and || (some word).
    words: list[ColumnElement[Any]] = [
        func.plainto_tsquery(PG_TEXT_CONFIG, bindparam(f"t{i}", term))
        for i, term in enumerate(terms)
    ]
    some = functools.reduce(lambda a, b: a.op("||")(b), words)
    every = functools.reduce(lambda a, b: a.op("&&")(b), words)
    tsv: ColumnElement[Any] = literal_column("tsv")

    def newest(match: ColumnElement[Any], holds_every: int, order: ColumnElement[Any]) -> Any:
        return (
            select(patterns.c.id, tsv.label("tsv"), literal(holds_every).label("every"))
            .where(tsv.op("@@")(match))
            .order_by(order.desc())
            .limit(MAX_CANDIDATES)
        )

    # Patterns holding every word are few: found through the GIN index, then sorted (`id + 0`
    # keeps the planner from walking ids newest first and testing each row, which it prefers
    # whenever it expects hundreds of matches, and which cost 20 ms for 5,000 rows here).
    # Patterns holding some word are many when a word is common: the planner walks ids then,
    # and stops at the limit; for rare words it uses the index.
    parts = [newest(some, 0, patterns.c.id)]
    if len(terms) > 1:
        parts.insert(0, newest(every, 1, patterns.c.id + 0))
    both = union_all(*parts).subquery()
    # Ranked against any word, as bm25 is on SQLite: scores of both kinds compare.
    score = func.max(func.ts_rank_cd(both.c.tsv, some)).label("score")
    held = func.max(both.c.every).label("every")
    ranked = (
        select(both.c.id, held, score)
        .group_by(both.c.id)
        .order_by(held.desc(), score.desc(), both.c.id.desc())
        .limit(limit)
        .subquery()
    )
    return (
        select(ranked.c.id, ranked.c.score, patterns.c.body)
        .join(patterns, patterns.c.id == ranked.c.id)
        .order_by(ranked.c.every.desc(), ranked.c.score.desc(), ranked.c.id.desc())
    )
