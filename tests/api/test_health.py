"""Health, docs and the unauthenticated surface."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from activities.config import Settings
from api import temporal
from tests.api.conftest import Serve


async def test_healthz_ok_without_key(http: httpx.AsyncClient) -> None:
    """/healthz needs no key and reports Temporal as ok when the server answers."""
    r = await http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"temporal": "ok"}


async def test_healthz_unavailable_when_temporal_down(
    serve: Serve,
    api_settings: Settings,
    as_: Callable[[str], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Temporal unreachable the API still starts; health and Temporal-backed routes say 503."""
    monkeypatch.setattr(temporal, "STARTUP_WAIT_S", 0.2)
    monkeypatch.setattr(temporal, "RECONNECT_WAIT_S", 0.2)
    dead = api_settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
    async with serve(dead) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/healthz")
        assert r.status_code == 503
        assert r.headers["retry-after"].isdigit()
        assert r.json()["error"]["code"] == "temporal_unavailable"
        r = await c.get("/workflows/anything", headers=as_("vic"))
        assert r.status_code == 503
        assert "retry-after" in r.headers
        # Catalog routes do not need Temporal and keep working.
        assert (await c.get("/definitions", headers=as_("vic"))).status_code == 200


async def test_openapi_lists_every_route_without_key(http: httpx.AsyncClient) -> None:
    """/openapi.json is public and documents every route with request and response models."""
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    expected = {
        "/healthz": {"get"},
        "/me": {"get"},
        "/metrics": {"get"},
        "/tools": {"get"},
        "/definitions": {"get"},
        "/definitions/{name}": {"get"},
        "/definitions/errors": {"get"},
        "/definitions/reload": {"post"},
        "/definitions/validate": {"post"},
        "/workflows": {"get", "post"},
        "/workflows/{workflow_id}": {"get"},
        "/workflows/{workflow_id}/audit": {"get"},
        "/workflows/{workflow_id}/events": {"get"},
        "/workflows/{workflow_id}/steps": {"get"},
        "/workflows/{workflow_id}/steps/{step}/items": {"get"},
        "/workflows/{workflow_id}/steps/{step}/iterations": {"get"},
        "/workflows/{workflow_id}/steps/{step}/calls": {"get"},
        "/workflows/{workflow_id}/grants/{grant}": {"delete"},
        "/workflows/{workflow_id}/gates": {"get"},
        "/workflows/{workflow_id}/gates/{gate}": {"post"},
        "/workflows/{workflow_id}/cancel": {"post"},
        "/workflows/{workflow_id}/pause": {"post"},
        "/workflows/{workflow_id}/resume": {"post"},
        "/governed": {"post"},
        "/memory": {"get"},
        "/memory/{pattern_id}": {"delete"},
        "/approvals": {"get"},
        "/approvals/batch": {"post"},
        "/schedules": {"get", "post"},
        "/schedules/{schedule_id}": {"delete"},
        "/versions": {"get"},
        "/versions/current": {"post"},
        "/codec/encode": {"post"},
        "/codec/decode": {"post"},
    }
    assert {p: set(ops) for p, ops in spec["paths"].items()} == expected
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = op["responses"]
            ok = codes.get("200") or codes.get("201") or codes.get("202")
            assert ok and ok.get("content"), f"{method} {path} has no documented response"
            # Lifecycle signals and the catalog reload carry no body: the key says who asked.
            if method == "post" and not path.endswith(("/cancel", "/pause", "/resume", "/reload")):
                assert "requestBody" in op, f"{method} {path} has no documented body"
    assert "WorkflowCreate" in spec["components"]["schemas"]
    assert (await http.get("/docs")).status_code == 200
