"""The search statements of each backend: every word bound, ranked by the backend's own measure.

A search first asks for patterns holding every word of the query, then (when those are fewer than
the limit) for patterns holding any of them. Either way at most MAX_CANDIDATES of the newest
matching patterns are ranked: ranking costs per match, and a common word can match most of the
table.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, Executable, bindparam, func, literal_column, select, text

from activities.memory.engine import Backend
from activities.memory.schema import FTS_TABLE, patterns

MAX_CANDIDATES = 200
PG_TEXT_CONFIG: ColumnElement[Any] = literal_column("'english'::regconfig")

# FTS5 ranks with bm25 (lower is better, so the score is its negation). The MATCH expression is
# one bound parameter.
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


def statement(
    backend: Backend, terms: list[str], limit: int, *, every: bool
) -> tuple[Executable, dict[str, Any]]:
    """The statement and its parameters: patterns holding every one of `terms` (`every`) or any
    of them, best first, at most `limit`; rows are (id, score, body)."""
    if backend == "postgresql":
        return _postgres(terms, limit, every), {}
    # Terms are letters and digits only (text.words), so a quote can never end an FTS5 string,
    # and AND/OR/NEAR inside one are words.
    match = (" AND " if every else " OR ").join(f'"{term}"' for term in terms)
    return _SQLITE, {"match": match, "candidates": MAX_CANDIDATES, "limit": limit}


def _postgres(terms: list[str], limit: int, every: bool) -> Executable:
    # Each word is its own bound plainto_tsquery (which never fails on any text), joined with
    # the tsquery operators && or ||.
    words: list[ColumnElement[Any]] = [
        func.plainto_tsquery(PG_TEXT_CONFIG, bindparam(f"t{i}", term))
        for i, term in enumerate(terms)
    ]
    some = functools.reduce(lambda a, b: a.op("||")(b), words)
    match = functools.reduce(lambda a, b: a.op("&&")(b), words) if every else some
    tsv: ColumnElement[Any] = literal_column("tsv")
    newest = (
        select(patterns.c.id, tsv)
        .where(tsv.op("@@")(match))
        .order_by(patterns.c.id.desc())
        .limit(MAX_CANDIDATES)
        .subquery()
    )
    # Ranked against any word, as FTS5's bm25 is either way: scores of both passes compare.
    score: ColumnElement[float] = func.ts_rank_cd(newest.c.tsv, some).label("score")
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
