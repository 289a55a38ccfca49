"""/docs, /redoc and their files as HTTP sees them (no server: the app in process). The browser
side, with the network cut off, is tests/browser/test_docs_pages.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from activities.config import Settings
from api.app import create_app
from api.docs_pages import DOCS_CSP, FILES, IMMUTABLE, REDOC_CSP, REVALIDATE, assets


@pytest.fixture
async def docs() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app in process, without a key (the docs need none)."""
    app = create_app(Settings(stepgate_api_keys_file=None))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://stepgate.test"
    ) as c:
        yield c


def sources(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


@pytest.mark.parametrize(("path", "csp"), [("/docs", DOCS_CSP), ("/redoc", REDOC_CSP)])
async def test_docs_pages_load_only_versioned_files_of_this_server(
    docs: httpx.AsyncClient, path: str, csp: str
) -> None:
    """Each page carries its policy, holds no inline script, and names only versioned files
    under /docs/static, each of which answers; nothing names another host or a font."""
    r = await docs.get(path)
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert re.search(r"<script(?![^>]*\bsrc=)", r.text) is None, "an inline script"
    assert "//" not in r.text.replace("<!doctype html>", "")
    assert "font" not in r.text
    assert 'data-openapi="/openapi.json"' in r.text
    for url in sources(r.text):
        found = re.fullmatch(r"/docs/static/([^?]+)\?v=([0-9a-f]{16})", url)
        assert found, url
        name, version = found.groups()
        assert version == assets()[name].digest
        assert (await docs.get(url)).status_code == 200


async def test_docs_policies_allow_nothing_from_elsewhere() -> None:
    """Both policies refuse every source but this server (and data: images, blob: workers):
    no inline or evaluated script, no framing, no form posting anywhere."""
    for csp in (DOCS_CSP, REDOC_CSP):
        rules = dict(part.split(" ", 1) for part in csp.split("; "))
        assert rules["default-src"] == "'none'"
        assert rules["script-src"] == "'self'"
        assert rules["frame-ancestors"] == "'none'"
        assert rules["form-action"] == "'none'"
        assert "http" not in csp and "*" not in csp and "unsafe-eval" not in csp
    assert "unsafe-inline" not in DOCS_CSP


async def test_static_files_are_kept_a_year_by_digest_and_revalidated_otherwise(
    docs: httpx.AsyncClient,
) -> None:
    """A file asked for by its digest may be kept a year; asked for otherwise it must be
    revalidated; its ETag answers 304 with no body; it comes gzipped to a client that takes it."""
    asset = assets()["swagger-ui-bundle.js"]
    r = await docs.get(f"/docs/static/swagger-ui-bundle.js?v={asset.digest}")
    assert r.status_code == 200
    assert r.content == asset.body
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(asset.body) / 3
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == IMMUTABLE
    assert r.headers["etag"] == asset.etag
    r = await docs.get(
        "/docs/static/swagger-ui-bundle.js?v=0000000000000000",
        headers={"Accept-Encoding": "identity"},
    )
    assert r.headers["cache-control"] == REVALIDATE
    assert "content-encoding" not in r.headers
    assert r.content == asset.body
    r = await docs.get("/docs/static/swagger-ui-bundle.js", headers={"If-None-Match": asset.etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == asset.etag


@pytest.mark.parametrize(
    "path",
    [
        "/docs/static/core.py",
        "/docs/static/__init__.py",
        "/docs/static/..%2Fcore.py",
        "/docs/static/%2e%2e/%2e%2e/app.py",
        "/docs/static/static/favicon.png",
        "/docs/static/",
    ],
)
async def test_docs_static_serves_its_named_files_and_nothing_else(
    docs: httpx.AsyncClient, path: str
) -> None:
    """A name outside the list (a module beside the files, a path that climbs) is a 404: a name
    is looked up, never joined to a folder."""
    r = await docs.get(path)
    assert r.status_code == 404
    assert b"import" not in r.content


async def test_served_files_name_no_cdn() -> None:
    """What the pages load names no CDN: ReDoc's Redocly logo is rewritten away, and Swagger UI
    is told to send the document to no validator."""
    assert set(assets()) == set(FILES)
    assert b"cdn.redoc.ly" not in assets()["redoc.standalone.js"].body
    assert b"validatorUrl: null" in assets()["swagger-init.js"].body


async def test_docs_pages_follow_the_root_path() -> None:
    """Behind a proxy that mounts the API under a prefix, the pages name their files and the
    document under that prefix."""
    app = create_app(Settings(stepgate_api_keys_file=None))
    transport = httpx.ASGITransport(app=app, root_path="/stepgate")
    async with httpx.AsyncClient(transport=transport, base_url="http://stepgate.test") as c:
        page = (await c.get("/docs")).text
    assert 'data-openapi="/stepgate/openapi.json"' in page
    assert all(u.startswith("/stepgate/docs/static/") for u in sources(page)), sources(page)
