"""API keys and roles."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from activities.config import Settings
from tests.api.conftest import Serve


async def test_request_without_key_unauthorized(http: httpx.AsyncClient) -> None:
    """A protected route without a key is 401 with a Bearer challenge."""
    r = await http.get("/tools")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "unauthorized"


async def test_request_with_unknown_key_unauthorized(http: httpx.AsyncClient) -> None:
    """An unknown key is 401 and says the token is invalid."""
    r = await http.get("/tools", headers={"Authorization": "Bearer not-a-key-at-all"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_request_without_keys_file_unauthorized(
    serve: Serve, api_settings: Settings, worker: None
) -> None:
    """With no keys file every protected route refuses, naming the setting to fix it."""
    open_settings = api_settings.model_copy(update={"stepgate_api_keys_file": None})
    async with serve(open_settings) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.post("/workflows", json={"definition": "hello", "input": {"name": "x"}})
        assert r.status_code == 401
        assert "STEPGATE_API_KEYS_FILE" in r.json()["error"]["message"]
        assert (await c.get("/healthz")).status_code == 200


async def test_start_as_viewer_forbidden(
    http: httpx.AsyncClient, as_: Callable[[str], dict[str, str]]
) -> None:
    """A viewer may read but not start runs."""
    r = await http.post(
        "/workflows", json={"definition": "hello", "input": {"name": "x"}}, headers=as_("vic")
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


async def test_tools_as_viewer_listed(
    http: httpx.AsyncClient, as_: Callable[[str], dict[str, str]]
) -> None:
    """Any key reads the tool listing, each tool with its JSON Schemas."""
    r = await http.get("/tools", headers=as_("vic"))
    assert r.status_code == 200
    by_name = {t["name"]: t for t in r.json()}
    assert by_name["data.transform"]["input_schema"]["required"] == ["data", "expression"]
    assert "test.echo" in by_name
