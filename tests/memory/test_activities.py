"""The memory activities on a real worker (build_worker), called by name like GovernedWorkflow."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from activities import default_registry
from activities.config import Settings
from activities.memory import MEMORY_PATTERN_TOO_LARGE, MEMORY_UNAVAILABLE, MemoryActivities
from activities.memory.store import MAX_PATTERN_BYTES
from activities.models import (
    MEMORY_SEARCH_ACTIVITY,
    MEMORY_WRITE_ACTIVITY,
    MemoryPattern,
    MemorySearch,
    MemorySearchResult,
)
from tests.memory.conftest import pattern
from tests.support.postgres import LocalPostgres
from tests.support.procs import free_port
from tests.support.util import eventually
from worker import build_worker

QUICK_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0)


class Remember(BaseModel):
    queue: str
    pattern: MemoryPattern
    q: str
    attempts: int = 0  # 0: retry until the write lands, as GovernedWorkflow does


class Remembered(BaseModel):
    ids: list[int]
    found: MemorySearchResult


@workflow.defn(sandboxed=False)
class RememberProbe:
    """Writes a pattern twice (a retried write) and searches, through the contract names."""

    @workflow.run
    async def run(self, probe: Remember) -> Remembered:
        retry = RetryPolicy(
            initial_interval=timedelta(milliseconds=100),
            backoff_coefficient=1.0,
            maximum_attempts=probe.attempts,
        )
        ids = [
            await workflow.execute_activity(
                MEMORY_WRITE_ACTIVITY,
                probe.pattern,
                task_queue=probe.queue,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=retry,
            )
            for _ in range(2)
        ]
        found = await workflow.execute_activity(
            MEMORY_SEARCH_ACTIVITY,
            MemorySearch(q=probe.q, limit=5),
            task_queue=probe.queue,
            result_type=MemorySearchResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=retry,
        )
        return Remembered(ids=ids, found=found)


@contextlib.asynccontextmanager
async def workers(
    client: Client, settings: Settings, memory: MemoryActivities
) -> AsyncIterator[str]:
    """The real worker on the settings' queue, and the probe on a queue of its own."""
    probe_queue = f"probe-{uuid.uuid4()}"
    async with (
        build_worker(client, settings, default_registry(entry_points=False), memory=memory),
        Worker(client, task_queue=probe_queue, workflows=[RememberProbe]),
    ):
        yield probe_queue
    await memory.store.close()


async def test_write_and_search_through_the_worker(
    client: Client, settings: Settings, memory_url: str | None
) -> None:
    """build_worker registers both activities: a write retried keeps one id, and the search
    finds the pattern."""
    settings = settings.model_copy(update={"stepgate_database_url": memory_url})
    async with workers(client, settings, MemoryActivities.from_settings(settings)) as queue:
        result = await client.execute_workflow(
            RememberProbe.run,
            Remember(
                queue=settings.stepgate_task_queue,
                pattern=pattern("governed-1", "rebuild the search index"),
                q="search index",
            ),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
        )
    assert result.ids[0] == result.ids[1]
    assert [h.id for h in result.found.hits] == result.ids[:1]
    assert result.found.hits[0].pattern.workflow_id == "governed-1"


async def test_write_over_the_limit_fails_without_retry(client: Client, settings: Settings) -> None:
    """A pattern too large to keep is a non-retryable failure of its own type."""
    async with workers(client, settings, MemoryActivities.from_settings(settings)) as queue:
        handle = await client.start_workflow(
            RememberProbe.run,
            Remember(
                queue=settings.stepgate_task_queue,
                pattern=pattern("governed-1", "x", comments=["y" * MAX_PATTERN_BYTES]),
                q="x",
            ),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
        )
        try:
            await handle.result()
            raise AssertionError("the write succeeded")
        except WorkflowFailureError as err:
            assert isinstance(err.cause, ActivityError)
            cause = err.cause.cause
            assert isinstance(cause, ApplicationError) and cause.non_retryable
            assert cause.type == MEMORY_PATTERN_TOO_LARGE


class Outage:
    """A database the worker reaches through a switch: PostgreSQL behind a loopback relay that
    can refuse connections, or a SQLite file whose folder is blocked by a plain file."""

    def __init__(self, tmp_path: Path, postgres: LocalPostgres | None) -> None:
        self.tmp_path = tmp_path
        self.postgres = postgres
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.blocker = tmp_path / "data"

    async def url(self) -> str | None:
        if self.postgres is None:
            return None
        real = await self.postgres.create_database()
        return real.replace(f":{self.postgres.port}/", f":{self.port}/")

    async def down(self) -> None:
        if self.postgres is None:
            self.blocker.write_text("not a folder")
        else:
            await self.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def up(self) -> None:
        if self.postgres is None:
            self.blocker.unlink()
            return
        target = self.postgres.port

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    while data := await src.read(65_536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = await asyncio.start_server(relay, "127.0.0.1", self.port)


async def test_write_retries_while_the_database_is_down_then_lands(
    client: Client,
    settings: Settings,
    memory_url: str | None,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """With the database down the write fails retryably (MemoryUnavailable, no password in the
    message) and is retried; once the database is back the same run's write lands."""
    postgres = None if memory_url is None else request.getfixturevalue("postgres")
    outage = Outage(tmp_path, postgres)
    settings = settings.model_copy(
        update={"stepgate_database_url": await outage.url(), "stepgate_data": tmp_path / "data"}
    )
    await outage.down()
    async with workers(client, settings, MemoryActivities.from_settings(settings)) as queue:
        handle = await client.start_workflow(
            RememberProbe.run,
            Remember(
                queue=settings.stepgate_task_queue,
                pattern=pattern("governed-1", "rotate the vault tokens"),
                q="vault tokens",
            ),
            id=f"probe-{uuid.uuid4()}",
            task_queue=queue,
        )

        async def failing() -> list[object]:
            return list((await handle.describe()).raw_description.pending_activities)

        pending = await eventually(
            failing, ok=lambda p: bool(p) and p[0].attempt >= 3, what="write retried"
        )
        failure = pending[0].last_failure  # type: ignore[attr-defined]
        assert failure.application_failure_info.type == MEMORY_UNAVAILABLE
        assert not failure.application_failure_info.non_retryable
        assert "stepgate-test" not in failure.message  # the database password
        await outage.up()
        try:
            result = await asyncio.wait_for(handle.result(), timeout=60)
        finally:
            await outage.close()
    assert [h.id for h in result.found.hits] == result.ids[:1]
