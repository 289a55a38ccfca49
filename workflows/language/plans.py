"""Checking a plan (a definition made at run time) before it may run: the same validator as the
catalog's, plus the plan step's own bounds. Runs as an activity on the worker, never inside
workflow code (validation reads the tool registry and may use much CPU)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.models import VALIDATE_PLAN_ACTIVITY, PlanCall, PlanResult
from activities.registry import ToolError, ToolRegistry
from workflows.language.validation import validate_definition


def plan_issues(raw: Any, allowed: list[str], max_steps: int) -> list[str]:
    """What a plan may not do, however valid it is as a definition."""
    if not isinstance(raw, dict):
        return [f"(plan): a plan must be a definition object, got {type(raw).__name__}"]
    issues: list[str] = []
    if raw.get("secrets"):
        issues.append("secrets: a plan cannot use secrets")
    steps = raw.get("steps")
    if isinstance(steps, list):
        if len(steps) > max_steps:
            issues.append(
                f"steps: {len(steps)} steps, more than the {max_steps} this plan may have"
            )
        names = {a.partition("@")[0] for a in allowed}
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            if step.get("pipeline") is not None:
                issues.append(f"steps[{i}].pipeline: a plan cannot run other pipelines")
            for where, holder in (("tool", step), ("compensate.tool", step.get("compensate"))):
                tool = holder.get("tool") if isinstance(holder, dict) else None
                if isinstance(tool, str) and tool.partition("@")[0] not in names:
                    issues.append(
                        f"steps[{i}].{where}: tool {tool!r} is not allowed in this plan "
                        f"(allowed: {', '.join(sorted(names))})"
                    )
    return issues


class PlanActivities:
    """Built once per worker with its tool registry."""

    def __init__(self, registry: ToolRegistry) -> None:
        self.registry = registry

    def activities(self) -> list[Callable[..., Any]]:
        return [self.validate_plan]

    @activity.defn(name=VALIDATE_PLAN_ACTIVITY)
    async def validate_plan(self, call: PlanCall) -> PlanResult:
        """Every problem with the plan, or the plan with its tools pinned; the check runs in a
        thread, off the worker's event loop."""
        return await asyncio.to_thread(self.check, call)

    def check(self, call: PlanCall) -> PlanResult:
        issues = plan_issues(call.definition, call.allowed_tools, call.max_steps)
        report = validate_definition(call.definition, self.registry, catalog={})
        issues += [str(i) for i in report.errors]
        if issues or report.definition is None:
            return PlanResult(errors=issues or ["(plan): not a valid definition"])
        return PlanResult(
            definition=report.definition.model_dump(mode="json", by_alias=True, exclude_none=True),
            risks={
                s.id: self._risk(s.resolved_tool or s.tool or "", s.with_)
                for s in report.definition.steps
            },
        )

    def _risk(self, tool: str, args: dict[str, Any]) -> str:
        try:
            return self.registry.resolve(tool).risk_for(args)
        except ToolError:
            return "high"  # a tool this worker does not know counts as the riskiest
