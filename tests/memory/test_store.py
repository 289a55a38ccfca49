"""The memory's store on both backends: idempotent writes, ranked bounded search, delete."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import structlog
from alembic import command
from sqlalchemy import insert, select

from activities.masking import mask
from activities.memory import MemoryStore, MemoryUnavailable, PatternTooLarge
from activities.memory.engine import prepare_folder
from activities.memory.migrate import _config, current_revision, head
from activities.memory.schema import patterns
from activities.memory.search import MAX_CANDIDATES
from activities.memory.store import MAX_PATTERN_BYTES, MAX_RESULT_BYTES
from activities.memory.text import search_text
from tests.conftest import ROOT
from tests.memory.conftest import (
    SECRET_CONTEXT,
    SECRET_WORDS,
    context_summary,
    memory_settings,
    pattern,
)
from tests.support.procs import free_port

PLAN = {
    "name": "plan",
    "steps": [
        {"id": "snapshot_volume", "tool": "http.request", "with": {"url": "https://x"}},
        {
            "id": "resize_cluster",
            "tool": "shell.run",
            "approval": {"review": "double the kubernetes nodes?"},
        },
    ],
}


async def ids(store: MemoryStore, q: str, limit: int = 10) -> list[int]:
    return [hit.id for hit in await store.search(q, limit)]


async def test_write_same_run_twice_replaces_the_pattern(store: MemoryStore) -> None:
    """A retried write of one run keeps one row and its id, with the newer content."""
    first = await store.write(pattern("run-1", "rotate the grafana certificates"))
    again = await store.write(pattern("run-1", "renew the prometheus certificates"))
    assert again == first
    assert await ids(store, "certificates") == [first]
    assert await ids(store, "grafana") == []
    hits = await store.search("prometheus", 10)
    assert [h.pattern.request for h in hits] == ["renew the prometheus certificates"]


async def test_search_ranks_patterns_sharing_more_words_first(store: MemoryStore) -> None:
    """The pattern sharing every word of the query outranks one sharing a single word; one
    sharing none is not a hit."""
    one = await store.write(pattern("a", "restart the billing workers"))
    all_ = await store.write(pattern("b", "restart the billing database replica in staging"))
    await store.write(pattern("c", "archive old invoices"))
    hits = await store.search("billing database replica", 10)
    assert [h.id for h in hits] == [all_, one]
    assert hits[0].score > hits[1].score > 0


async def test_search_finds_an_old_pattern_holding_every_word(store: MemoryStore) -> None:
    """Past the newest MAX_CANDIDATES patterns sharing one word, an older pattern holding every
    word of the query is still found, and ranked first."""
    old = await store.write(pattern("old", "failover the ledger replica in canary"))
    newer = [pattern(f"new-{n}", f"failover drill number {n}") for n in range(MAX_CANDIDATES + 10)]
    await store.write_many(newer)
    hits = await store.search("failover ledger replica canary", 3)
    assert hits[0].id == old and len(hits) == 3


async def test_search_returns_at_most_limit(store: MemoryStore) -> None:
    """Seven matching patterns, limit 3: three hits."""
    for n in range(7):
        await store.write(pattern(f"run-{n}", f"scale the search cluster to {n + 3} nodes"))
    assert len(await store.search("search cluster nodes", 3)) == 3


@pytest.mark.parametrize(
    "q",
    ["resize_cluster", "kubernetes", "shell.run", "oncall", "freeze", "reason", "rejected"],
)
async def test_search_finds_plan_reasons_comments_and_outcome(store: MemoryStore, q: str) -> None:
    """Step ids, tools, review texts, reasons, comments, context and the outcome are searched."""
    found = await store.write(
        pattern(
            "run-1",
            "make room for the holiday traffic",
            context_summary='{"team": "oncall"}',
            plan=PLAN,
            reasons=[{"rule": "policy", "detail": "change freeze in december", "points": 2}],
            comments=["the reason is the marketing campaign"],
            outcome="rejected",
        )
    )
    await store.write(pattern("run-2", "unrelated request"))
    assert await ids(store, q) == [found]


HOSTILE = [
    '" OR * NEAR(',
    "a:*",
    "'; DROP TABLE memory_patterns; --",
    "!!! ??? ... --- ((( ))) &&& ||| <-> :* ^ \"\" ''",
    "NOT AND OR NEAR",
    "\x00\x01\x02",
    "(" * 2_000,
    "_" * 2_000,
    "x" * 2_000,
]


@pytest.mark.parametrize("q", HOSTILE, ids=range(len(HOSTILE)))
async def test_search_of_operators_only_finds_nothing(store: MemoryStore, q: str) -> None:
    """Queries of operators, punctuation, stopwords, one over-long word or SQL sharing no word
    with the pattern return no hits, raise nothing, and leave the table as it was."""
    kept = await store.write(pattern("run-1", "purge the stale cache"))
    assert await store.search(q, 10) == []
    assert await ids(store, "stale cache") == [kept]


@pytest.mark.parametrize(
    "q",
    [
        'cache" OR "x',
        "cache:*",
        "NEAR(stale cache)",
        "stale' || 'cache",
        "-cache +table",
        " ".join(f"word{n}" for n in range(400)) + " cache",
    ],
)
async def test_search_with_operators_around_words_finds_by_the_words(
    store: MemoryStore, q: str
) -> None:
    """Operator syntax around real words is ignored: the words still find the pattern (the
    last query has 401 words, of which only the first 32 count, so it finds nothing)."""
    kept = await store.write(pattern("run-1", "drop the stale cache table"))
    expected = [] if q.startswith("word0") else [kept]
    assert await ids(store, q) == expected


async def test_write_hostile_text_round_trips(store: MemoryStore) -> None:
    """A pattern holding NUL, quotes and FTS/tsquery syntax is stored, found by its words and
    returned unchanged."""
    request = "purge \x00 queue\"; DROP TABLE x; -- ' OR 1=1 NEAR(a b) c:* <-> ü"
    found = await store.write(pattern("run-1", request, comments=["\x00' \" \\"]))
    hits = await store.search("purge queue", 10)
    assert [h.id for h in hits] == [found]
    assert hits[0].pattern.request == request
    assert hits[0].pattern.comments == ["\x00' \" \\"]


async def test_write_many_twice_keeps_one_pattern_per_run(store: MemoryStore) -> None:
    """A bulk write repeated keeps one row per workflow id, as single writes do."""
    batch = [pattern(f"run-{n}", f"resize volume {n} of the archive") for n in range(3)]
    await store.write_many(batch)
    first = await ids(store, "archive volume")
    await store.write_many(batch)
    assert sorted(await ids(store, "archive volume")) == sorted(first) and len(first) == 3


async def test_write_and_search_log_no_pattern_contents(store: MemoryStore) -> None:
    """Writing and searching log nothing of what a pattern holds, at any level (a write logs
    its workflow id and row id at DEBUG)."""
    secret = "quarterly-payroll-export"
    with structlog.testing.capture_logs() as logs:
        await store.write(pattern("run-1", f"send the {secret}", comments=[secret]))
        assert len(await store.search(secret, 5)) == 1
    assert logs and all(secret not in repr(e) for e in logs), logs


async def test_delete_forgets_one_pattern(store: MemoryStore) -> None:
    """Delete removes the pattern from searches; deleting it again, or an unknown id, is False."""
    gone = await store.write(pattern("run-1", "compact the kafka topics"))
    kept = await store.write(pattern("run-2", "compact the kafka logs"))
    assert await store.delete(gone) is True
    assert await ids(store, "kafka") == [kept]
    assert await store.delete(gone) is False
    assert await store.delete(2**62) is False


async def test_write_refuses_pattern_over_the_limit(store: MemoryStore) -> None:
    """A pattern larger than MAX_PATTERN_BYTES is refused, and nothing is stored."""
    big = pattern("run-1", "load the warehouse", comments=["x" * MAX_PATTERN_BYTES])
    with pytest.raises(PatternTooLarge):
        await store.write(big)
    assert await store.search("warehouse", 10) == []


async def test_search_stops_before_the_result_budget(store: MemoryStore) -> None:
    """Hits whose patterns add up past MAX_RESULT_BYTES are left out, lowest ranked first."""
    filler = "y" * (MAX_RESULT_BYTES // 3 + 1)
    for n in range(4):
        await store.write(pattern(f"run-{n}", "reindex the catalog", comments=[filler]))
    hits = await store.search("reindex catalog", 10)
    assert len(hits) == 2


async def test_concurrent_migrations_run_once(tmp_path: Path, memory_url: str | None) -> None:
    """Four processes' worth of stores starting at once on an empty database all succeed, and
    the schema is at the newest revision once."""
    settings = memory_settings(tmp_path, memory_url)
    stores = [MemoryStore.from_settings(settings) for _ in range(4)]
    try:
        await asyncio.gather(*(s.ready() for s in stores))
        assert await current_revision(stores[0].engine) == head()
        found = await stores[1].write(pattern("run-1", "migrate the ledger"))
        assert await ids(stores[2], "ledger") == [found]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_migration_at_start_keeps_existing_patterns(
    tmp_path: Path, memory_url: str | None
) -> None:
    """A process starting on a current schema changes nothing: the patterns stay."""
    settings = memory_settings(tmp_path, memory_url)
    first = MemoryStore.from_settings(settings)
    found = await first.write(pattern("run-1", "migrate the ledger"))
    await first.close()
    second = MemoryStore.from_settings(settings)
    try:
        assert await second.start() is True
        assert await ids(second, "ledger") == [found]
    finally:
        await second.close()


async def test_migration_masks_patterns_stored_before_masking(
    tmp_path: Path, memory_url: str | None
) -> None:
    """A row a store at revision 0001 wrote with its context unmasked is masked by migration
    0002, in the stored body and in the index: a search neither finds it by those values nor
    returns them, and finds it by its request with the context masked as the status masks it."""
    store = MemoryStore.from_settings(memory_settings(tmp_path, memory_url))
    old = pattern(
        "run-1", "rotate the billing database", context_summary=context_summary(SECRET_CONTEXT)
    )
    try:
        await asyncio.to_thread(prepare_folder, store.engine)
        async with store.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), "0001"))
            await conn.execute(
                insert(patterns).values(
                    workflow_id=old.workflow_id,
                    created_at=old.created_at,
                    outcome=old.outcome,
                    doc=search_text(old),
                    body=old.model_dump_json(),
                )
            )
        assert "hunter2zx9q" in search_text(old)  # control: the old index held the value
        await store.ready()
        assert await current_revision(store.engine) == head()
        for word in SECRET_WORDS:
            assert await ids(store, word) == [], word
        (hit,) = await store.search("billing database", 5)
        assert json.loads(hit.pattern.context_summary) == mask(SECRET_CONTEXT)
        async with store.engine.connect() as conn:
            doc, body = (await conn.execute(select(patterns.c.doc, patterns.c.body))).one()
        assert not any(word in doc or word in body for word in SECRET_WORDS)
    finally:
        await store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_unreachable_database_raises_unavailable(tmp_path: Path, backend: str) -> None:
    """A database that cannot be opened (nothing listening; a file where the data folder should
    be) makes every call raise MemoryUnavailable without the password in its message, and
    start() reports it instead of raising."""
    url = None
    if backend == "postgresql":
        url = f"postgresql://memory:s3cret-pw@127.0.0.1:{free_port()}/memory"
    else:
        (tmp_path / "data").write_text("not a folder")
    store = MemoryStore.from_settings(memory_settings(tmp_path, url))
    try:
        assert await store.start() is False
        for call in (
            store.search("anything", 5),
            store.write(pattern("run-1", "anything")),
            store.delete(1),
        ):
            with pytest.raises(MemoryUnavailable) as err:
                await call
            assert "s3cret-pw" not in str(err.value)
    finally:
        await store.close()


EXIT_WITHOUT_CLOSE = """
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
from activities.config import Settings
from activities.memory import MemoryStore
from activities.models import MemoryPattern

async def main():
    store = MemoryStore.from_settings(Settings(stepgate_data=Path(sys.argv[1]), _env_file=None))
    p = MemoryPattern(workflow_id="w", request="hello", outcome="completed",
                      created_at=datetime.now(UTC))
    await store.write(p)
    print(len(await store.search("hello", 5)))

asyncio.run(main())
"""


async def test_process_exits_with_a_store_left_open(tmp_path: Path) -> None:
    """A process that used the SQLite memory and never closed it still exits: pooled
    connections do not hold it open."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXIT_WITHOUT_CLOSE,
        str(tmp_path / "data"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "1"
