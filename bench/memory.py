"""The memory's search on a full table: fill it with patterns, time typical searches.

`python -m bench.memory` (or the `memory` section of `make bench`) fills 100,000 patterns (5,000
at BENCH_SCALE=quick) of varied requests, plans, reasons and comments into SQLite and into a
private PostgreSQL server, then times searches as a planner and a person make them (a few words,
a whole request) and prints fill time and search p50/p99 for each backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from activities.config import Settings
from activities.memory import MemoryStore
from activities.models import MemoryPattern
from bench.scale import Scale, scale_from_env
from bench.stats import Summary
from tests.support.postgres import INSTALL_HINT, LocalPostgres, find_bin_dir

PATTERNS = {"quick": 5_000, "full": 100_000}
SEARCHES = {"quick": 100, "full": 1_000}
BATCH = 1_000
LIMIT = 5  # what the planner asks for
SEED = 20261123
TARGET_P99_MS = 20.0

VERBS = "deploy restart rotate scale migrate backup restore rollback patch upgrade drain resize \
purge reindex failover provision decommission archive compact throttle".split()
SERVICES = "payments billing search auth inventory checkout notifications ledger catalog \
reporting gateway recommendations shipping pricing fraud analytics identity messaging \
scheduler media exports webhooks onboarding support invoices loyalty ads geo feeds".split()
THINGS = "certificates database replica cache workers cluster queue index tokens dashboards \
secrets nodes volumes pods topics buckets firewall rules dns records backups logs alerts \
cron jobs feature flags".split()
PLACES = "production staging canary eu-west us-east ap-south dev sandbox dr-site".split()
WHY = "after the incident|before the holiday freeze|for the quarterly audit|because latency \
doubled|to cut costs|per the security review|for the new region|ahead of the launch".split("|")
TOOLS = "http.request shell.run llm.chat notify.webhook data.transform artifact.write".split()
COMMENTS = "looks fine|ship it|not during business hours|check the rollback first|needs a \
ticket|who owns this service?|approved by the oncall|too risky on a friday|do staging first|\
the dashboard is red already".split("|")
RULES = "tool risk|history|policy rule|llm".split("|")
OUTCOMES = "completed completed completed failed rejected cancelled".split()

QUERIES = [
    "deploy payments to production",
    "rotate certificates",
    "failover the ledger database replica",
    "scale checkout workers in eu-west",
    "rollback",
    "purge the search cache before the holiday freeze",
]


def request(rng: random.Random) -> str:
    service, thing = rng.choice(SERVICES), rng.choice(THINGS)
    return (
        f"{rng.choice(VERBS)} the {service} {thing} in {rng.choice(PLACES)} {rng.choice(WHY)}"
        + (f", then {rng.choice(VERBS)} {rng.choice(SERVICES)}" if rng.random() < 0.3 else "")
    )


def patterns(n: int, rng: random.Random) -> Iterator[MemoryPattern]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(n):
        steps = [
            {
                "id": f"{rng.choice(VERBS)}_{rng.choice(THINGS)}_{k}",
                "tool": rng.choice(TOOLS),
                "with": {"target": rng.choice(SERVICES)},
                **({"approval": {"review": rng.choice(COMMENTS)}} if rng.random() < 0.3 else {}),
            }
            for k in range(rng.randint(1, 6))
        ]
        yield MemoryPattern(
            workflow_id=f"governed-{i:08d}",
            request=request(rng),
            context_summary=json.dumps({"team": rng.choice(SERVICES), "ticket": f"OPS-{i}"}),
            plan={"name": "plan", "steps": steps},
            tier=rng.randint(1, 3),
            score=round(rng.random() * 10, 2),
            reasons=[
                {"rule": rng.choice(RULES), "detail": f"{rng.choice(TOOLS)} {rng.choice(WHY)}"}
                for _ in range(rng.randint(0, 3))
            ],
            decision=rng.choice(["approved", "modified", "rejected", "auto"]),
            deciders=[f"user:{rng.choice(['alice', 'bob', 'carol', 'dan'])}"],
            comments=rng.sample(COMMENTS, rng.randint(0, 2)),
            outcome=rng.choice(OUTCOMES),
            durations_ms={"plan": rng.randint(100, 9000), "execute": rng.randint(100, 90000)},
            created_at=start + timedelta(minutes=i),
        )


def queries(n: int, rng: random.Random) -> list[str]:
    """Fixed typical queries, short ones made from the vocabulary, and whole requests."""
    made = list(QUERIES)
    while len(made) < n:
        made.append(
            request(rng)
            if rng.random() < 0.3
            else f"{rng.choice(VERBS)} {rng.choice(SERVICES)} {rng.choice(THINGS)}"
        )
    return made[:n]


async def measure_store(store: MemoryStore, scale_name: str) -> dict[str, Any]:
    rng = random.Random(SEED)
    await store.ready()
    started = time.perf_counter()
    batch: list[MemoryPattern] = []
    for p in patterns(PATTERNS[scale_name], rng):
        batch.append(p)
        if len(batch) == BATCH:
            await store.write_many(batch)
            batch = []
    if batch:
        await store.write_many(batch)
    fill_s = time.perf_counter() - started
    if store.backend == "postgresql":
        # What autovacuum does within a minute of such a fill: the planner needs the words'
        # statistics to choose between the GIN index and the newest-first scan.
        async with store.engine.begin() as conn:
            await conn.execute(text("ANALYZE memory_patterns"))
    asked = queries(SEARCHES[scale_name], rng)
    for q in asked[:20]:  # warm caches and prepared statements
        await store.search(q, LIMIT)
    times, empty = [], 0
    for q in asked:
        t0 = time.perf_counter()
        hits = await store.search(q, LIMIT)
        times.append((time.perf_counter() - t0) * 1000)
        empty += not hits
    return {
        "patterns": PATTERNS[scale_name],
        # The machine is shared: the figures mean more next to how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
        "fill_s": round(fill_s, 1),
        "search_ms": Summary.of(times).as_dict(),
        "searches_without_hits": empty,
    }


async def measure(scale: Scale) -> dict[str, Any]:
    """Both backends, one after the other; PostgreSQL is skipped (and said so) without its
    binaries."""
    out: dict[str, Any] = {}
    folder = Path(tempfile.mkdtemp(prefix="stepgate-bench-memory-"))
    try:
        sqlite = MemoryStore.from_settings(Settings(stepgate_data=folder / "data", _env_file=None))
        try:
            out["sqlite"] = await measure_store(sqlite, scale.name)
        finally:
            await sqlite.close()
        bin_dir = find_bin_dir()
        if bin_dir is None:
            out["postgresql"] = {"skipped": INSTALL_HINT}
            return {"memory": out}
        server = LocalPostgres(Path(tempfile.mkdtemp(prefix="stepgate-bench-pg-")), bin_dir)
        try:
            await asyncio.to_thread(server.start)
            url = await server.create_database("memory")
            pg = MemoryStore.from_settings(Settings(stepgate_database_url=url, _env_file=None))
            try:
                out["postgresql"] = await measure_store(pg, scale.name)
            finally:
                await pg.close()
        finally:
            await asyncio.to_thread(server.stop)
            shutil.rmtree(server.folder, ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"memory": out}


def lines(result: dict[str, Any]) -> list[str]:
    rows = []
    for backend, r in result.items():
        if "skipped" in r:
            rows.append(f"{backend:<11} skipped: {r['skipped']}")
            continue
        s = r["search_ms"]
        verdict = "PASS" if s["p99"] <= TARGET_P99_MS else "MISS"
        rows.append(
            f"{backend:<11} {r['patterns']:>7,} patterns filled in {r['fill_s']:>6.1f} s; "
            f"search p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms over {s['n']} "
            f"(target p99 <= {TARGET_P99_MS:g} ms: {verdict}); "
            f"{r['searches_without_hits']} without hits"
        )
    return rows


def report_rows(r: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The bench table's rows: search p50 / p99 per backend, with the target, and fill time."""
    rows = []
    for backend, m in (r.get("memory") or {}).items():
        if "skipped" in m:
            rows.append((f"memory search, {backend}", "skipped", "", ""))
            continue
        s = m["search_ms"]
        rows.append(
            (
                f"memory search, {backend}, {m['patterns']:,} patterns, p50 / p99",
                f"{s['p50']:.1f} / {s['p99']:.1f} ms",
                f"p99 <= {TARGET_P99_MS:g} ms",
                "PASS" if s["p99"] <= TARGET_P99_MS else "MISS",
            )
        )
        rows.append((f"  fill {m['patterns']:,} patterns, {backend}", f"{m['fill_s']} s", "", ""))
    return rows


def main() -> int:
    result = asyncio.run(measure(scale_from_env()))["memory"]
    print("\n".join(lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
