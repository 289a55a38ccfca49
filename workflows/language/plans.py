"""Checking a plan (a definition made at run time) before it may run: the same validator as the
catalog's, plus the plan's own bounds over everything it can reach (workflows/language/reach.py):
every tool it can call among the allowed ones, at most `max_steps` of them, no task queue that is
not allowed, no secrets, no other pipelines; then each call's risk. Runs as an activity on the
worker, never inside workflow code (validation reads the tool registry and may use much CPU)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from temporalio import activity

from activities.models import VALIDATE_PLAN_ACTIVITY, PlanCall, PlanResult
from activities.registry import ToolError, ToolRegistry
from workflows.language.reach import calls, task_queues
from workflows.language.validation import validate_definition


def plan_issues(
    raw: Any, allowed: Sequence[str], max_steps: int, queues: Sequence[str] = ()
) -> list[str]:
    """What a plan may not do, however valid it is as a definition: each call it can make (a
    step's tool, a compensation, a gate notification) must be an allowed tool, and they count
    against `max_steps`; each task queue it names must be one of `queues` (none by default)."""
    if not isinstance(raw, dict):
        return [f"(plan): a plan must be a definition object, got {type(raw).__name__}"]
    issues: list[str] = []
    if raw.get("secrets"):
        issues.append("secrets: a plan cannot use secrets")
    steps = raw.get("steps")
    reached = calls(raw)
    if isinstance(steps, list) and len(reached) > max_steps:
        issues.append(
            f"steps: {len(steps)} steps, {len(reached)} tool calls with their compensations and "
            f"gate notifications, more than the {max_steps} this plan may have"
        )
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict) and step.get("pipeline") is not None:
            issues.append(f"steps[{i}].pipeline: a plan cannot run other pipelines")
    names = {a.partition("@")[0] for a in allowed}
    for call in reached:
        if call.kind in ("pipeline", "plan") or call.name in names:
            continue  # another pipeline is refused above, whatever it calls
        issues.append(
            f"{call.path}: tool {call.tool!r} is not allowed in this plan "
            f"(allowed: {', '.join(sorted(names)) or 'none'})"
        )
    for path, queue in task_queues(raw):
        if queue not in queues:
            issues.append(
                f"{path}: task queue {queue!r} is not allowed in this plan "
                f"(allowed: {', '.join(sorted(queues)) or 'none'})"
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
        issues = plan_issues(
            call.definition, call.allowed_tools, call.max_steps, call.allowed_task_queues
        )
        report = validate_definition(call.definition, self.registry, catalog={})
        issues += [str(i) for i in report.errors]
        if issues or report.definition is None:
            return PlanResult(errors=issues or ["(plan): not a valid definition"])
        plan = report.definition.model_dump(mode="json", by_alias=True, exclude_none=True)
        return PlanResult(
            definition=plan,
            risks={c.path: self._risk(c.ref, c.args, c.kind == "agent") for c in calls(plan)},
        )

    def _risk(self, tool: str, args: dict[str, Any], chosen: bool = False) -> str:
        """A call's risk; `chosen`: a model chooses its arguments, so a tool whose risk depends
        on them counts as the riskiest."""
        try:
            found = self.registry.resolve(tool)
        except ToolError:
            return "high"  # a tool this worker does not know counts as the riskiest
        if chosen and not isinstance(found.risk, str):
            return "high"
        return found.risk_for(args)
