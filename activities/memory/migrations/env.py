"""Alembic's entry point for the memory's migrations: runs them on the connection it is given.

`activities.memory.migrate` opens that connection, begins the transaction, takes the migration
lock and calls Alembic; nothing here reads a URL or a configuration file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=context.config.attributes["version_table"])
# The caller's transaction is already open: this joins it, so the lock covers every migration.
with context.begin_transaction():
    context.run_migrations()
