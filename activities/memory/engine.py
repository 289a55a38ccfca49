"""The memory's database engine: which backend a URL names, and how each is opened."""

from __future__ import annotations

from pathlib import Path
from threading import Thread
from typing import Any, Literal

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from activities.config import Settings

Backend = Literal["sqlite", "postgresql"]

# Seconds to open a connection and to run one statement: a database that does not answer fails
# the call (retried by Temporal, or 503 from the API) instead of holding it until its timeout.
CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 10.0
# Seconds a SQLite writer waits for another one (the worker and the API share the file).
SQLITE_BUSY_TIMEOUT_S = 10.0
# Connections one process keeps to PostgreSQL (the worker's activities and the API's requests
# queue for them beyond that).
PG_POOL_SIZE = 5
PG_MAX_OVERFLOW = 5
# Connections one process keeps open to the SQLite file (one writes at a time anyway).
SQLITE_POOL_SIZE = 4
# The execution option that makes a SQLite transaction take the write lock at once.
SQLITE_IMMEDIATE = "stepgate_sqlite_immediate"


def database_url(settings: Settings) -> URL:
    """The URL the engine opens: STEPGATE_DATABASE_URL with its async driver, or the SQLite file
    in the data folder."""
    raw = settings.stepgate_database_url
    if raw is None:
        return URL.create("sqlite+aiosqlite", database=str(settings.memory_db_path.resolve()))
    try:
        url = make_url(raw)
    except ArgumentError:
        # Not echoed: the URL may hold a password.
        raise ValueError("STEPGATE_DATABASE_URL is not a valid database URL") from None
    if url.get_backend_name() == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    return url.set(drivername="postgresql+asyncpg")


def prepare_folder(engine: AsyncEngine) -> None:
    """Create the folder a SQLite file goes in (PostgreSQL needs nothing)."""
    database = engine.url.database
    if backend_of(engine) == "sqlite" and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def backend_of(engine: AsyncEngine) -> Backend:
    return "postgresql" if engine.dialect.name == "postgresql" else "sqlite"


def make_engine(url: URL) -> AsyncEngine:
    if url.get_backend_name() == "postgresql":
        return create_async_engine(
            url,
            pool_size=PG_POOL_SIZE,
            max_overflow=PG_MAX_OVERFLOW,
            pool_timeout=CONNECT_TIMEOUT_S,
            # No ping before each use (a round trip per search): a connection the server dropped
            # fails one call, retryably, and SQLAlchemy then replaces every pooled connection.
            connect_args={
                "timeout": CONNECT_TIMEOUT_S,
                "command_timeout": STATEMENT_TIMEOUT_S,
                "server_settings": {
                    # asyncpg prepares every statement, and a generic plan cannot see how many
                    # rows a query's words match: it would walk the whole table in id order to
                    # find a rare word. Planning each search for its own words avoids that.
                    "plan_cache_mode": "force_custom_plan",
                    # Compiling a query costs far more than these short searches take.
                    "jit": "off",
                },
            },
        )
    path = url.database or ""

    async def open_sqlite() -> Any:
        pending = aiosqlite.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
        # aiosqlite runs each connection in a thread of its own, and Python waits for such
        # threads at exit: a pooled connection of a store nobody closed would keep the process
        # alive. As daemon threads they end with it (SQLite's journal keeps the file whole).
        thread = pending if isinstance(pending, Thread) else getattr(pending, "_thread", None)
        if isinstance(thread, Thread):
            thread.daemon = True
        return await pending

    engine = create_async_engine(
        url,
        async_creator=open_sqlite,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_SIZE,
        pool_timeout=SQLITE_BUSY_TIMEOUT_S,
    )
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling leaves DDL outside transactions; SQLAlchemy's
    # `begin` event below emits BEGIN itself, so migrations run in one transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: the API reads while the worker writes; the mode is stored in the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
