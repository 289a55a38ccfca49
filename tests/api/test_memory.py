"""GET /memory and DELETE /memory/{id} over real HTTP, on both backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from activities.config import Settings
from activities.masking import mask
from activities.memory import MemoryStore
from activities.memory.migrate import current_revision, head
from tests.api.conftest import Serve
from tests.memory.conftest import SECRET_CONTEXT, SECRET_WORDS, context_summary, pattern
from tests.support.procs import free_port

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
async def memory_api(
    serve: Serve, api_settings: Settings, memory_url: str | None
) -> AsyncIterator[tuple[httpx.AsyncClient, MemoryStore]]:
    """The API on the parametrized backend, and a store on the same database to fill it."""
    settings = api_settings.model_copy(update={"stepgate_database_url": memory_url})
    store = MemoryStore.from_settings(settings)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        try:
            yield http, store
        finally:
            await store.close()


async def test_search_memory_ranks_hits_for_a_reader(
    memory_api: tuple[httpx.AsyncClient, MemoryStore], as_: Headers
) -> None:
    """A viewer's search returns the closest pattern first, at most `limit`, with its body."""
    http, store = memory_api
    close = await store.write(pattern("g-1", "failover the postgres primary in eu-west"))
    far = await store.write(pattern("g-2", "vacuum the postgres tables"))
    await store.write(pattern("g-3", "rotate the tls certificates"))
    r = await http.get("/memory", params={"q": "postgres primary failover"}, headers=as_("vic"))
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert [h["id"] for h in hits] == [close, far]
    assert hits[0]["pattern"]["workflow_id"] == "g-1" and hits[0]["score"] > hits[1]["score"]
    r = await http.get("/memory", params={"q": "postgres", "limit": 1}, headers=as_("vic"))
    assert len(r.json()["hits"]) == 1


async def test_search_memory_neither_returns_nor_finds_what_the_status_masks(
    memory_api: tuple[httpx.AsyncClient, MemoryStore], as_: Headers
) -> None:
    """A governed run's pattern whose context holds a db_password, an api_token and an
    Authorization header (whole, or cut through a value at 2,000 characters), and whose plan
    sends an Authorization header: /memory returns context and plan masked as the run's status
    masks them, and a search for those values finds nothing."""
    http, store = memory_api
    plan = {
        "name": "rotate",
        "steps": [
            {
                "id": "call",
                "tool": "http.request",
                "with": {"url": "https://x/", "headers": {"Authorization": "Bearer abc8w2m"}},
            }
        ],
    }
    summary = context_summary(SECRET_CONTEXT)
    await store.write(
        pattern("g-1", "rotate the billing database", context_summary=summary, plan=plan)
    )
    # Sorted keys put the password after the filler: the 2,000-character cut goes through it.
    cut = context_summary({"a_filler": "x" * 1_963, "password": "hunter2zx9q" * 5})
    assert cut.endswith("hunter2")
    await store.write(pattern("g-2", "rotate the billing replica", context_summary=cut))
    r = await http.get("/memory", params={"q": "rotate billing"}, headers=as_("vic"))
    assert r.status_code == 200, r.text
    found = {h["pattern"]["workflow_id"]: h["pattern"] for h in r.json()["hits"]}
    assert json.loads(found["g-1"]["context_summary"]) == mask(SECRET_CONTEXT)
    assert found["g-1"]["plan"] == mask(plan)
    assert found["g-2"]["context_summary"].endswith('"password": "***"')
    assert not any(word in r.text for word in (*SECRET_WORDS, "hunter2"))
    for word in SECRET_WORDS:
        r = await http.get("/memory", params={"q": word}, headers=as_("vic"))
        assert r.json() == {"hits": []}, word


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"q": "x", "limit": 101}, "query.limit"),
        ({"q": "x", "limit": 0}, "query.limit"),
        ({"q": "x", "limit": "ten"}, "query.limit"),
        ({"q": "x" * 2_001}, "query.q"),
        ({"q": ""}, "query.q"),
        ({}, "query.q"),
    ],
)
async def test_search_memory_out_of_bounds_is_422_naming_the_field(
    memory_api: tuple[httpx.AsyncClient, MemoryStore],
    as_: Headers,
    params: dict[str, object],
    path: str,
) -> None:
    """A limit outside 1..100, a missing, empty or 2,001-character q: 422 naming the field."""
    http, _ = memory_api
    r = await http.get("/memory", params=params, headers=as_("vic"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == [path]


@pytest.mark.parametrize(
    "q",
    ['" OR * NEAR(', "a:*", "'; DROP TABLE memory_patterns; --", "(" * 2_000, "\x00"],
)
async def test_search_memory_hostile_query_is_an_empty_200(
    memory_api: tuple[httpx.AsyncClient, MemoryStore], as_: Headers, q: str
) -> None:
    """Query syntax of either database, SQL or 2,000 operators: 200 with no hits, never a 5xx,
    and the memory is intact afterwards."""
    http, store = memory_api
    kept = await store.write(pattern("g-1", "shrink the redis cluster"))
    r = await http.get("/memory", params={"q": q}, headers=as_("vic"))
    assert r.status_code == 200, r.text
    assert r.json() == {"hits": []}
    r = await http.get("/memory", params={"q": "redis"}, headers=as_("vic"))
    assert [h["id"] for h in r.json()["hits"]] == [kept]


async def test_delete_memory_needs_memory_delete(
    memory_api: tuple[httpx.AsyncClient, MemoryStore], as_: Headers
) -> None:
    """A viewer and an operator get 403; an admin deletes (200), then the pattern is gone from
    searches and a second delete is a 404."""
    http, store = memory_api
    gone = await store.write(pattern("g-1", "drain the kubernetes node"))
    for who in ("vic", "olga"):
        r = await http.delete(f"/memory/{gone}", headers=as_(who))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["details"]["missing"] == ["memory_delete"]
    r = await http.delete(f"/memory/{gone}", headers=as_("root"))
    assert r.status_code == 200 and r.json() == {"id": gone, "deleted": True}
    r = await http.get("/memory", params={"q": "kubernetes"}, headers=as_("vic"))
    assert r.json() == {"hits": []}
    r = await http.delete(f"/memory/{gone}", headers=as_("root"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("pattern_id", ["0", "-1", str(2**63), "1e3", "abc"])
async def test_delete_memory_bad_id_is_422(
    memory_api: tuple[httpx.AsyncClient, MemoryStore], as_: Headers, pattern_id: str
) -> None:
    """An id that is not a positive 64-bit integer is a 422 naming it, never a driver error."""
    http, _ = memory_api
    r = await http.delete(f"/memory/{pattern_id}", headers=as_("root"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["path.pattern_id"]


async def test_memory_unavailable_is_503_without_the_url(
    serve: Serve, api_settings: Settings, as_: Headers
) -> None:
    """With PostgreSQL unreachable the API still starts; /memory answers 503
    `memory_unavailable` with Retry-After, and the message holds no password."""
    url = f"postgresql://stepgate:s3cret-pw@127.0.0.1:{free_port()}/memory"
    settings = api_settings.model_copy(update={"stepgate_database_url": url})
    async with serve(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        for r in (
            await http.get("/memory", params={"q": "anything"}, headers=as_("vic")),
            await http.delete("/memory/1", headers=as_("root")),
        ):
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "memory_unavailable"
            assert r.headers["Retry-After"]
            assert "s3cret-pw" not in r.text


async def test_api_migrates_the_memory_at_start(
    serve: Serve, api_settings: Settings, memory_url: str | None
) -> None:
    """Starting the API brings an empty database to the newest migration before any request."""
    settings = api_settings.model_copy(update={"stepgate_database_url": memory_url})
    store = MemoryStore.from_settings(settings)
    try:
        async with serve(settings):
            assert await current_revision(store.engine) == head()
    finally:
        await store.close()
