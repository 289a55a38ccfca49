"""Checks workflow code must not run itself (a library upgrade could change what they say, and
so change a replay): a value against a tool's input or output model, or against a JSON Schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio import activity

from activities.destinations import patch_issues
from activities.jsonschema_safe import value_issues
from activities.models import CHECK_ACTIVITY, CheckCall, CheckResult
from activities.registry import ToolError, ToolRegistry

# Messages returned at most: enough to repair the value, bounded for history.
MAX_ISSUES = 50


def _path(loc: tuple[Any, ...] | list[Any], prefix: str) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(value)"


class CheckActivities:
    """Built once per worker with its tool registry."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry

    def activities(self) -> list[Callable[..., Any]]:
        return [self.check]

    @activity.defn(name=CHECK_ACTIVITY)
    async def check(self, call: CheckCall) -> CheckResult:
        if call.json_schema is not None:
            return CheckResult(issues=schema_issues(call.json_schema, call.value, call.where))
        if call.tool is None:
            return CheckResult()
        try:
            tool = self.registry.resolve(call.tool)
        except ToolError:
            return CheckResult(issues=patch_issues(None, call)[:MAX_ISSUES], checked=False)
        model = tool.input_model if call.part == "input" else tool.output_model
        issues = patch_issues(tool, call)
        try:
            model.model_validate(call.value)
        except ValidationError as err:
            errors = err.errors()[:MAX_ISSUES]
            issues += [f"{_path(e['loc'], call.where)}: {e['msg']}" for e in errors]
        return CheckResult(issues=issues[:MAX_ISSUES])


def schema_issues(schema: dict[str, Any], value: Any, where: str) -> list[str]:
    """Patterns on RE2 and a work budget, as every schema check in Stepgate."""
    return [
        f"{_path(list(loc), where)}: {message}"
        for loc, message in value_issues(schema, value, MAX_ISSUES)
    ]
