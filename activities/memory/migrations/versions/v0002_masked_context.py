"""Mask what patterns stored before the memory masked anything: each row's context summary and
plan get the masking the run's status applies (sensitive keys' values become ***), and its
words are indexed again from the masked pattern, so neither a search's results nor its index
hold those values any more. Rows are read and rewritten in batches, by id, inside the migration's
transaction; a row that does not parse is left as it is (a search shows it masked all the same).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError

from activities.memory.redact import redacted
from activities.memory.text import search_text
from activities.models import MemoryPattern

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 500
_patterns = sa.table(
    "memory_patterns", sa.column("id", sa.BigInteger), sa.column("doc"), sa.column("body")
)


def upgrade() -> None:
    conn = op.get_bind()
    after = -1
    while True:
        batch = conn.execute(
            sa.select(_patterns.c.id, _patterns.c.body)
            .where(_patterns.c.id > after)
            .order_by(_patterns.c.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return
        for row_id, body in batch:
            try:
                stored = MemoryPattern.model_validate_json(body)
            except ValidationError:
                continue
            masked = redacted(stored)
            if masked is not stored:
                conn.execute(
                    sa.update(_patterns)
                    .where(_patterns.c.id == row_id)
                    .values(body=masked.model_dump_json(), doc=search_text(masked))
                )
        after = batch[-1][0]


def downgrade() -> None:
    pass  # masked values are gone for good
