"""openapi.validate called directly: the reference validator's verdict, and the attacks on it
(oversized and deep documents, references that would fetch, a `$ref` fan-out that would run
for minutes), each refused within its bound and without blocking the worker's event loop."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import time
from typing import Any

import pytest
import yaml
from openapi_spec_validator.validation.validators import SpecValidator
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
from activities.tools.openapi import MAX_SPEC_BYTES, MAX_SPEC_VALUES
from tests.catalog.sources import ITEMS_API
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, json_reply


async def validate(acts: ToolActivities, document: Any, **more: Any) -> dict[str, Any]:
    result = await acts.execute(make_call("openapi.validate", {"document": document, **more}))
    found: dict[str, Any] = result.output
    return found


async def refused(acts: ToolActivities, document: Any, **more: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await validate(acts, document, **more)
    assert caught.value.non_retryable
    return caught.value


def with_schema(schema: dict[str, Any], **schemas: Any) -> dict[str, Any]:
    """ITEMS_API whose GET /items answers `schema`, with more component schemas."""
    doc = copy.deepcopy(ITEMS_API)
    doc["components"]["schemas"].update(schemas)
    answer = doc["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]
    answer["schema"] = schema
    return doc


async def test_valid_document_lists_its_operations(acts: ToolActivities) -> None:
    """A valid OpenAPI 3.0 document passes, with its version, title and operations."""
    out = await validate(acts, ITEMS_API)
    assert (out["valid"], out["version"], out["title"]) == (True, "3.0.3", "items")
    assert out["operations"] == ["GET /items", "POST /items"] and out["errors"] == []
    assert out["document"] == ITEMS_API


async def test_yaml_text_is_read_as_the_document(acts: ToolActivities) -> None:
    """The document may come as YAML (or JSON) text, read by the bounded reader."""
    out = await validate(acts, yaml.safe_dump(ITEMS_API))
    assert out["valid"] and out["document"] == ITEMS_API


async def test_invalid_document_fails_naming_what_is_wrong(acts: ToolActivities) -> None:
    """The validator's errors name their place: the step fails with them (OpenApiInvalid), or,
    with require_valid false, they come back with valid: false."""
    doc = copy.deepcopy(ITEMS_API)
    del doc["info"]["version"]
    doc["paths"]["items"] = doc["paths"].pop("/items")
    err = await refused(acts, doc)
    assert err.type == "OpenApiInvalid"
    assert '/info: "version" is a required property' in err.message
    out = await validate(acts, doc, require_valid=False)
    assert out["valid"] is False
    assert [e["path"] for e in out["errors"]] == ["/info", "/paths"]


async def test_document_without_a_version_is_not_openapi(acts: ToolActivities) -> None:
    """Any other JSON object is refused as not an OpenAPI document."""
    err = await refused(acts, {"title": "items"})
    assert "not an OpenAPI document" in err.message


async def test_oversized_document_is_refused_before_validation(acts: ToolActivities) -> None:
    """A document over MAX_SPEC_BYTES (as text or as data), over MAX_SPEC_VALUES values or
    nested too deeply is refused as OpenApiTooLarge, naming the bound."""
    big = with_schema({"type": "string", "description": "x" * MAX_SPEC_BYTES})
    assert (await refused(acts, big)).type == "OpenApiTooLarge"
    assert (await refused(acts, json.dumps(big))).type == "OpenApiTooLarge"
    many = with_schema({"type": "string", "enum": list(range(MAX_SPEC_VALUES + 1))})
    err = await refused(acts, many)
    assert err.type == "OpenApiTooLarge" and f"{MAX_SPEC_VALUES} values" in err.message
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(80):
        deep = {"allOf": [deep]}
    err = await refused(acts, with_schema(deep))
    assert err.type == "OpenApiTooLarge" and "nested deeper" in err.message


@pytest.mark.parametrize(
    "ref",
    ["URL", "file:///etc/passwd", "other.yaml#/components/schemas/Item", "//evil.example/x.json"],
)
async def test_reference_outside_the_document_is_never_fetched(
    acts: ToolActivities, server: LocalServer, ref: str
) -> None:
    """A `$ref` that is not a local pointer is refused before the validator runs: nothing is
    fetched, neither over HTTP (a loopback server sees no request) nor from the worker's disk."""
    server.route("GET", "/schema.json", lambda seen: json_reply({"type": "string"}))
    target = server.url("/schema.json") if ref == "URL" else ref
    err = await refused(acts, with_schema({"$ref": target}))
    assert err.type == "OpenApiInvalid" and "not a local reference" in err.message
    assert server.seen == []


async def test_keywords_that_move_the_base_uri_are_refused(
    acts: ToolActivities, server: LocalServer
) -> None:
    """`$id` would make a local `#/...` resolve against a URL of the author's choosing: refused,
    and the server it names sees no request."""
    schema = {"$id": server.url("/base.json"), "properties": {"a": {"$ref": "#/definitions/a"}}}
    err = await refused(acts, with_schema(schema))
    assert "$id is not allowed here" in err.message and server.seen == []


async def test_dangling_local_reference_is_named(acts: ToolActivities) -> None:
    """A local `$ref` that points nowhere is refused with its place."""
    err = await refused(acts, with_schema({"$ref": "#/components/schemas/Nope"}))
    assert "points nowhere" in err.message and "/paths/~1items/get" in err.message


async def test_self_referencing_schema_is_an_error_not_a_crash(acts: ToolActivities) -> None:
    """A schema whose allOf names itself makes the validator recurse without end: reported as
    an error of the document."""
    doc = with_schema(
        {"$ref": "#/components/schemas/Loop"},
        Loop={"allOf": [{"$ref": "#/components/schemas/Loop"}]},
    )
    out = await validate(acts, doc, require_valid=False)
    assert out["valid"] is False and "nest without end" in out["errors"][0]["message"]


async def test_reference_fan_out_stops_at_its_budget_off_the_event_loop(
    acts: ToolActivities,
) -> None:
    """Schemas each naming the next twice in an allOf make the validator's work double per
    level (ten levels ran for 30 s); it stops at timeout_s (OpenApiBudgetExceeded), and the
    event loop kept running meanwhile: the validation runs on a worker thread."""
    levels = 24
    schemas = {
        f"S{i}": {"allOf": [{"$ref": f"#/components/schemas/S{i + 1}"}] * 2} for i in range(levels)
    }
    schemas[f"S{levels}"] = {"type": "object"}
    doc = with_schema({"$ref": "#/components/schemas/S0"}, **schemas)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        err = await refused(acts, doc, timeout_s=1.0)
    finally:
        ticker.cancel()
    took = time.monotonic() - started
    assert err.type == "OpenApiBudgetExceeded" and "1s budget" in err.message
    assert 1.0 <= took < 5.0 and ticks >= 20
    # The thread is free again: the next validation answers at once.
    assert (await validate(acts, ITEMS_API))["valid"]


async def test_no_validator_outlives_its_call(acts: ToolActivities) -> None:
    """The library caches each validator's errors in an unbounded cache keyed by the validator,
    which would keep every document checked in the worker's memory; the tool empties it."""

    def validators() -> int:
        gc.collect()
        return sum(isinstance(o, SpecValidator) for o in gc.get_objects())

    before = validators()
    for n in range(5):
        doc = copy.deepcopy(ITEMS_API)
        doc["info"]["title"] = f"items {n}"
        assert (await validate(acts, doc))["valid"]
    assert validators() == before
