"""`/versions`: the worker deployment's builds and making one current, for admins only (the
rollout itself, with real builds and the `stepgate` command, is tests/test_versioning.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from activities.config import Settings
from tests.api.conftest import Serve

Auth = Callable[[str], dict[str, str]]


@pytest.fixture
async def versions_api(serve: Serve, api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API over a deployment of the test's own, which no worker has polled yet."""
    own = api_settings.model_copy(
        update={"stepgate_deployment_name": f"versions-{uuid.uuid4().hex[:8]}"}
    )
    async with serve(own) as url, httpx.AsyncClient(base_url=url, timeout=30) as c:
        yield c


async def test_versions_without_key_unauthorized(versions_api: httpx.AsyncClient) -> None:
    """Listing builds or setting the current one needs a key."""
    assert (await versions_api.get("/versions")).status_code == 401
    r = await versions_api.post("/versions/current", json={"build_id": "b1"})
    assert r.status_code == 401


async def test_versions_as_operator_or_viewer_forbidden(
    versions_api: httpx.AsyncClient, as_: Auth
) -> None:
    """An operator and a viewer get 403 naming the `versions` permission they lack."""
    for who in ("olga", "vic"):
        for r in (
            await versions_api.get("/versions", headers=as_(who)),
            await versions_api.post("/versions/current", json={"build_id": "b1"}, headers=as_(who)),
        ):
            assert r.status_code == 403, r.text
            assert r.json()["error"]["details"]["missing"] == ["versions"]


async def test_versions_as_admin_lists_deployment_without_builds(
    versions_api: httpx.AsyncClient, as_: Auth
) -> None:
    """Before any versioned worker polled, the deployment has no build and no current one."""
    r = await versions_api.get("/versions", headers=as_("root"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["deployment"].startswith("versions-")
    assert body["builds"] == []
    assert [body[k] for k in ("current_build_id", "ramping_build_id", "last_modified_by")] == [
        None,
        None,
        None,
    ]
    assert isinstance(body["unversioned_open_runs"], int)


async def test_set_current_unknown_build_conflict(
    versions_api: httpx.AsyncClient, as_: Auth
) -> None:
    """A build none of whose workers has polled cannot be made current: 409 with Temporal's
    reason."""
    r = await versions_api.post("/versions/current", json={"build_id": "b1"}, headers=as_("root"))
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "build_not_ready"
    assert "pollers" in r.json()["error"]["message"]


async def test_set_current_with_quote_in_build_id_invalid(
    versions_api: httpx.AsyncClient, as_: Auth
) -> None:
    """A build id holds letters, digits, `.`, `_`, `+` and `-` only; other fields are refused."""
    for body in ({"build_id": "b1' OR 1=1"}, {"build_id": "b1", "force": True}, {}):
        r = await versions_api.post("/versions/current", json=body, headers=as_("root"))
        assert r.status_code == 422, (body, r.text)
