"""The catalog and definition validation."""

from __future__ import annotations

from collections.abc import Callable

import httpx

Auth = Callable[[str], dict[str, str]]


async def test_list_definitions_shows_catalog(http: httpx.AsyncClient, as_: Auth) -> None:
    """Every catalog pipeline is listed with its versions."""
    r = await http.get("/definitions", headers=as_("vic"))
    assert r.status_code == 200
    names = {d["name"]: d for d in r.json()}
    assert {"hello", "approval_demo", "gated"} <= set(names)
    assert names["hello"]["versions"] == [1]


async def test_get_definition_has_input_schema(http: httpx.AsyncClient, as_: Auth) -> None:
    """One pipeline comes with its input JSON Schema and pinned tools."""
    r = await http.get("/definitions/hello", headers=as_("vic"))
    assert r.status_code == 200
    body = r.json()
    assert body["input_schema"]["required"] == ["name"]
    assert body["steps"][0]["resolved_tool"] == "data.transform@1.0.0"


async def test_get_definition_unknown_not_found(http: httpx.AsyncClient, as_: Auth) -> None:
    """An unknown pipeline or version is a 404 in the error shape."""
    assert (await http.get("/definitions/nope", headers=as_("vic"))).status_code == 404
    r = await http.get("/definitions/hello?version=9", headers=as_("vic"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_validate_yaml_valid(http: httpx.AsyncClient, as_: Auth) -> None:
    """A good YAML definition validates with no errors."""
    text = (
        "name: x\nsteps:\n  - id: a\n    tool: data.transform\n"
        "    with: {data: 1, expression: '@'}\n"
    )
    r = await http.post(
        "/definitions/validate",
        content=text,
        headers={**as_("vic"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 200
    assert r.json() == {"valid": True, "errors": []}


async def test_validate_json_invalid_lists_every_error(http: httpx.AsyncClient, as_: Auth) -> None:
    """A bad definition is still a 200, listing every problem with its path."""
    bad = {
        "name": "x",
        "steps": [
            {"id": "a", "tool": "no.such_tool"},
            {"id": "b", "tool": "data.transform", "needs": ["ghost"]},
        ],
    }
    r = await http.post("/definitions/validate", json=bad, headers=as_("vic"))
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is False
    paths = {e["path"] for e in body["errors"]}
    assert {"steps[0].tool", "steps[1].needs"} <= paths


async def test_validate_unparseable_yaml_bad_request(http: httpx.AsyncClient, as_: Auth) -> None:
    """Broken YAML is a 400 naming the line (a document that parses but breaks a limit is 422)."""
    r = await http.post(
        "/definitions/validate",
        content="name: x\nsteps: [\n  - a: {\n",
        headers={**as_("vic"), "Content-Type": "text/yaml"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unparseable"
    assert "line" in r.json()["error"]["message"]


async def test_validate_wrong_media_type_unsupported(http: httpx.AsyncClient, as_: Auth) -> None:
    """Only JSON and YAML bodies are accepted."""
    r = await http.post(
        "/definitions/validate", content="x", headers={**as_("vic"), "Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


async def test_tools_say_their_risk_and_whether_they_run_locally(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """GET /tools tells a pipeline author which tools run as local activities and how risky
    each one is."""
    r = await http.get("/tools", headers=as_("olga"))
    assert r.status_code == 200, r.text
    by_name = {t["name"]: t for t in r.json()}
    assert by_name["data.echo"]["local"] is True and by_name["data.echo"]["risk"] == "low"
    assert by_name["shell.run"]["local"] is False
    assert by_name["http.request"]["risk"] == "depends on the call"
