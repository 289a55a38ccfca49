"""The memory's table as queries see it; migrations/ creates it (and the backends' text index)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

patterns = sa.Table(
    "memory_patterns",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("workflow_id", sa.String(1000), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    # The words the row is found by (text.search_text), indexed by each backend.
    sa.Column("doc", sa.Text(), nullable=False),
    # The pattern as JSON, returned whole.
    sa.Column("body", sa.Text(), nullable=False),
)
# SQLite's FTS5 index of `doc` (an external-content table kept by triggers).
FTS_TABLE = "memory_fts"
