"""The OpenAPI document states what the API enforces, and the API answers what the document and
HTTP say: each case here is one the fuzz found (tests/api/test_fuzz.py runs every check)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

Auth = Callable[[str], dict[str, str]]
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


async def document(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def accepts(doc: dict[str, Any], component: str, value: Any) -> bool:
    """Whether the document's schema `component` says `value` is valid."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": doc["components"]}
    return Draft202012Validator(schema).is_valid(value)


def allow(r: httpx.Response) -> set[str]:
    return {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}


async def test_options_and_unsupported_methods_name_every_documented_method(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """OPTIONS on every documented path answers 204 with `Allow` naming exactly the documented
    methods (and OPTIONS); an undocumented method is a 405 with the same `Allow`. Starlette's
    405 named only the first route that matched (`/workflows`: POST, not GET), and OPTIONS was
    a 405 too."""
    doc = await document(http)
    for template, operations in doc["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        documented = {m.upper() for m in operations if m in HTTP_METHODS}
        r = await http.options(path)
        assert (r.status_code, allow(r)) == (204, documented | {"OPTIONS"}), template
        unsupported = sorted({"PUT", "PATCH", "DELETE", "POST", "GET"} - documented)[0]
        r = await http.request(unsupported, path, headers=as_("root"))
        assert r.status_code == 405, (template, unsupported, r.text)
        assert allow(r) == documented | {"OPTIONS"}, template
        assert r.json()["error"]["code"] == "method_not_allowed"


async def test_document_refuses_what_the_fuzz_saw_refused(http: httpx.AsyncClient) -> None:
    """The inputs the API refused although the document called them valid are invalid in the
    document now: an empty inline definition (start or schedule), both or neither of cron and
    interval, an unknown priority, a cursor or header that is no number, non-base64 codec data."""
    doc = await document(http)
    assert not accepts(doc, "WorkflowCreate", {"definition": {}})
    assert accepts(doc, "WorkflowCreate", {"definition": "hello"})
    assert accepts(doc, "WorkflowCreate", {"definition": "hello@2"})
    assert not accepts(doc, "WorkflowCreate", {"definition": "hello@²"})
    minimal = {"name": "x", "steps": [{"id": "a", "tool": "data.echo"}]}
    assert accepts(doc, "WorkflowCreate", {"definition": minimal})
    assert not accepts(doc, "ScheduleCreate", {"definition": {}})
    assert not accepts(doc, "ScheduleCreate", {"definition": "hello"})
    assert not accepts(
        doc, "ScheduleCreate", {"definition": "hello", "cron": "* * * * *", "interval": "5m"}
    )
    assert accepts(doc, "ScheduleCreate", {"definition": "hello", "interval": "5m", "cron": None})
    assert not accepts(doc, "GovernedCreate", {"request": "r", "plan": {}})
    assert not accepts(doc, "CodecPayloads", {"payloads": [{"data": "é"}]})
    assert accepts(doc, "CodecPayloads", {"payloads": [{"data": "aGk=", "metadata": {"e": ""}}]})
    inbox = {p["name"]: p["schema"] for p in doc["paths"]["/approvals"]["get"]["parameters"]}
    pattern = re.compile(inbox["priority"]["anyOf"][0]["pattern"])
    assert pattern.match("urgent, high") and not pattern.match("0" * 25)
    events = doc["paths"]["/workflows/{workflow_id}/events"]["get"]["parameters"]
    (last,) = [p["schema"] for p in events if p["name"] == "last-event-id"]
    assert last["type"] == "string" and not re.match(last["pattern"], "null")


@pytest.mark.parametrize(
    ("media", "body"),
    [
        ("application/yaml", b"null\n"),
        ("application/yaml", b"- 1\n- 2\n"),
        ("application/json", b"[1, 2]"),
        ("application/json", b'"a definition"'),
    ],
)
async def test_validate_refuses_a_body_that_is_no_mapping(
    http: httpx.AsyncClient, as_: Auth, media: str, body: bytes
) -> None:
    """The document says a definition to validate is a mapping: any other document is a 422
    (it was a 200 `valid: false`, accepting what the document calls invalid)."""
    r = await http.post(
        "/definitions/validate", content=body, headers={**as_("vic"), "Content-Type": media}
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [
        {"path": "", "message": "a definition is a mapping with name and steps"}
    ]


async def test_what_the_document_allows_is_not_refused_as_invalid(
    http: httpx.AsyncClient, as_: Auth
) -> None:
    """Values the document allows get an answer other than 422: an invented cursor names no
    page (404), an empty `Last-Event-ID` resumes nothing, a mapping with no definition in it is
    `valid: false`, and a `hello@²` start is refused by the document's pattern itself."""
    r = await http.get("/workflows", params={"cursor": "0" * 4_096}, headers=as_("vic"))
    assert r.status_code == 404, r.text
    r = await http.get("/workflows/x/events", headers={**as_("vic"), "Last-Event-ID": "null"})
    assert r.status_code == 422 and "last-event-id" in r.text
    r = await http.post("/definitions/validate", json={}, headers=as_("vic"))
    assert r.status_code == 200 and r.json()["valid"] is False
    r = await http.post("/workflows", json={"definition": "hello@²"}, headers=as_("olga"))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"].startswith(
        "body.definition"
    )
