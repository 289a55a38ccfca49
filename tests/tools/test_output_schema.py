"""A step's `output_schema`, checked by the tool activity on the tool's output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.jsonschema_safe import MAX_WORK
from activities.runtime import ToolActivities
from activities.shapes import MAX_SHOWN
from tests.tools.conftest import make_call

ITEMS_SCHEMA = {
    "type": "object",
    "required": ["value"],
    "properties": {
        "value": {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"id": {"type": "string"}}},
                }
            },
        }
    },
}


def echo(value: Any, schema: dict[str, Any], **kw: Any) -> Any:
    return make_call("data.echo", {"value": value}, output_schema=schema, **kw)


async def test_output_schema_mismatch_fails_step_naming_path(acts: ToolActivities) -> None:
    """An output that breaks the step's output_schema fails without a retry, naming the path."""
    value = {"items": [{"id": "a"}, {"id": "b"}, {"id": 3}]}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(echo(value, ITEMS_SCHEMA))
    assert err.value.type == "OutputSchemaMismatch" and err.value.non_retryable is True
    assert "output.value.items[2].id: 3 is not of type 'string'" in err.value.message
    assert err.value.message.startswith("step 'step' (data.echo@1.0.0) output does not match")


async def test_output_schema_match_returns_output(acts: ToolActivities) -> None:
    """An output that fits the step's output_schema is returned as the tool made it."""
    value = {"items": [{"id": "a"}, {"id": "b"}]}
    result = await acts.execute(echo(value, ITEMS_SCHEMA))
    assert result.output == {"value": value}


async def test_output_schema_checked_before_output_is_offloaded(
    acts: ToolActivities, tmp_path: Path
) -> None:
    """An output too large for history that breaks the schema fails before it is stored; one that
    fits is stored as usual."""
    bad = {"items": [{"id": 7, "blob": "x" * 4000}]}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(echo(bad, ITEMS_SCHEMA, max_output_bytes=1024))
    assert err.value.type == "OutputSchemaMismatch"
    assert not list((tmp_path / "artifacts").rglob("*.json"))
    good = {"items": [{"id": "7", "blob": "x" * 4000}]}
    stored = await acts.execute(echo(good, ITEMS_SCHEMA, max_output_bytes=1024))
    assert stored.artifact is not None and stored.output is None


async def test_output_schema_mismatches_named_at_most_max_shown(acts: ToolActivities) -> None:
    """A thousand wrong items name the first few mismatches, not a thousand."""
    value = {"items": [{"id": n} for n in range(1000)]}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(echo(value, ITEMS_SCHEMA))
    assert err.value.message.count("is not of type") == MAX_SHOWN
    assert err.value.message.endswith("(and more)")


async def test_output_schema_mismatch_masks_secret_in_message(
    acts: ToolActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret echoed into an output that breaks the schema is masked in the failure message."""
    monkeypatch.setenv("STEPGATE_SECRET_TOKEN", "tok-4f1c9e2b")
    schema = {"type": "object", "properties": {"value": {"type": "integer"}}}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(echo("${secret.TOKEN}", schema))
    assert err.value.type == "OutputSchemaMismatch"
    assert "tok-4f1c9e2b" not in err.value.message and "output.value" in err.value.message


async def test_output_schema_unsafe_is_refused(acts: ToolActivities) -> None:
    """A schema that reached the activity without validation (a backreference RE2 cannot run) is
    refused without a retry, naming where in the schema, instead of being evaluated."""
    schema = {"type": "object", "properties": {"value": {"pattern": "(a)\\1"}}}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(echo("aa", schema))
    assert err.value.type == "InvalidOutputSchema" and err.value.non_retryable is True
    assert "output_schema.properties.value.pattern: pattern not supported" in err.value.message


async def test_output_schema_check_stops_at_work_budget(acts: ToolActivities) -> None:
    """An output_schema that tries two recursive branches per level stops after MAX_WORK keyword
    evaluations and fails the step, instead of 2^40 evaluations on the worker."""
    branch = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/level"}},
        "required": ["a", "z"],
    }
    schema = {
        "type": "object",
        "properties": {"value": {"$ref": "#/$defs/level"}},
        "$defs": {"level": {"anyOf": [branch, dict(branch)]}},
    }
    value: Any = {}
    for _ in range(40):
        value = {"a": value}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(echo(value, schema))
    assert err.value.type == "OutputSchemaMismatch"
    assert f"takes more than {MAX_WORK} steps" in err.value.message
