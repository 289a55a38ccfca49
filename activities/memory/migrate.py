"""Brings the memory's schema to the newest migration, safely when several processes start at once.

The worker and the API both migrate at start. On PostgreSQL the upgrade runs in one transaction
that first takes an advisory lock; on SQLite it takes the file's write lock (BEGIN IMMEDIATE). A
second process waits, then finds the schema current and does nothing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.memory.engine import SQLITE_IMMEDIATE, backend_of

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Its own version table, so the memory can share a database with other applications' Alembic.
VERSION_TABLE = "memory_alembic_version"
# pg_advisory_xact_lock key: any fixed 64-bit number no other application of the database uses.
PG_LOCK_KEY = 0x5374_6570_6761_7465  # "Stepgate"


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = VERSION_TABLE
    return cfg


def head() -> str:
    """The newest migration's revision."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None  # the package ships its migrations
    return revision


def _upgrade(conn: Connection) -> None:
    command.upgrade(_config(conn), "head")


def _current(conn: Connection) -> str | None:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to head under the migration lock; a no-op when already there."""
    async with engine.connect() as conn:
        if backend_of(engine) == "postgresql":
            async with conn.begin():
                # Held until this transaction ends: concurrent migrators run one after another.
                await conn.execute(select(func.pg_advisory_xact_lock(PG_LOCK_KEY)))
                await conn.run_sync(_upgrade)
            return
        conn = await conn.execution_options(**{SQLITE_IMMEDIATE: True})
        async with conn.begin():
            await conn.run_sync(_upgrade)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)
