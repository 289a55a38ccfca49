"""API keys: authentication, and keys added, removed and expired without a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from activities.config import Settings
from tests.api.conftest import Serve
from tests.api.helpers import eventually
from tests.test_access import write_keys


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


def _entries(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(path.read_text())
    return entries


async def test_key_added_to_file_works_without_restart(
    http: httpx.AsyncClient, api_settings: Settings
) -> None:
    """A key appended to the keys file is accepted by the running API once it looks again."""
    path = api_settings.stepgate_api_keys_file
    assert path is not None
    new = {"key": "key-dora-0123456789", "principal": "dora", "roles": ["viewer"]}
    headers = {"Authorization": f"Bearer {new['key']}"}
    assert (await http.get("/tools", headers=headers)).status_code == 401
    write_keys(path, [*_entries(path), new])
    await eventually(
        lambda: http.get("/tools", headers=headers), lambda r: r.status_code == 200, "key added"
    )


async def test_key_removed_from_file_stops_working(
    http: httpx.AsyncClient, api_settings: Settings, as_: Callable[[str], dict[str, str]]
) -> None:
    """A key taken out of the keys file is refused by the running API once it looks again."""
    path = api_settings.stepgate_api_keys_file
    assert path is not None
    assert (await http.get("/tools", headers=as_("vic"))).status_code == 200
    write_keys(path, [e for e in _entries(path) if e["principal"] != "vic"])
    r = await eventually(
        lambda: http.get("/tools", headers=as_("vic")), lambda r: r.status_code == 401, "removed"
    )
    assert r.json()["error"]["message"] == "unknown API key"
    assert (await http.get("/tools", headers=as_("olga"))).status_code == 200


async def test_expired_key_unauthorized_expired(
    http: httpx.AsyncClient, api_settings: Settings, as_: Callable[[str], dict[str, str]]
) -> None:
    """A key past its `expires` gets 401 `expired`; one expiring later still works."""
    path = api_settings.stepgate_api_keys_file
    assert path is not None
    late = {"olga": "2000-01-01T00:00:00Z", "vic": "2999-01-01T00:00:00+02:00"}
    write_keys(path, [{**e, "expires": late.get(e["principal"])} for e in _entries(path)])
    r = await eventually(
        lambda: http.get("/tools", headers=as_("olga")), lambda r: r.status_code == 401, "expired"
    )
    assert r.json()["error"]["code"] == "expired"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert (await http.get("/tools", headers=as_("vic"))).status_code == 200
