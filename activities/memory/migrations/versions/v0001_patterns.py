"""The memory of governed runs: one row per run, searched by text.

PostgreSQL keeps a generated `tsvector` of the words with a GIN index; SQLite keeps an FTS5 index
of them, filled by triggers so it can never disagree with the table.

Revision ID: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE = "memory_patterns"
FTS = "memory_fts"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    columns: list[sa.Column[Any]] = [
        sa.Column(
            "id",
            # On SQLite only INTEGER PRIMARY KEY is the rowid, which FTS5 rows are keyed by.
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("workflow_id", sa.String(1000), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    ]
    if postgres:
        columns.append(
            sa.Column(
                "tsv",
                postgresql.TSVECTOR(),
                sa.Computed("to_tsvector('english'::regconfig, doc)", persisted=True),
                nullable=False,
            )
        )
    op.create_table(TABLE, *columns)
    if postgres:
        # fastupdate off: a few writes a minute pay for updating the index at once, and no
        # search has to read through a list of pending entries.
        op.create_index(
            "memory_patterns_tsv",
            TABLE,
            ["tsv"],
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        )
        return
    op.execute(
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(doc, content='{TABLE}', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        f"CREATE TRIGGER memory_fts_insert AFTER INSERT ON {TABLE} BEGIN "
        f"INSERT INTO {FTS}(rowid, doc) VALUES (new.id, new.doc); END"
    )
    op.execute(
        f"CREATE TRIGGER memory_fts_delete AFTER DELETE ON {TABLE} BEGIN "
        f"INSERT INTO {FTS}({FTS}, rowid, doc) VALUES ('delete', old.id, old.doc); END"
    )
    op.execute(
        f"CREATE TRIGGER memory_fts_update AFTER UPDATE ON {TABLE} BEGIN "
        f"INSERT INTO {FTS}({FTS}, rowid, doc) VALUES ('delete', old.id, old.doc); "
        f"INSERT INTO {FTS}(rowid, doc) VALUES (new.id, new.doc); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("memory_fts_insert", "memory_fts_delete", "memory_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    op.drop_table(TABLE)
