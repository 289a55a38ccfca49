"""Validation of agent steps: each tool it offers is registered (pinned, with what the model is
offered and the tool's risk), its fixed arguments exist, its `when` reads only the call's `args`,
function names do not collide, and every call that could wait at a gate has someone to decide it.
Never called inside workflow code."""

from __future__ import annotations

from typing import Any

from activities.registry import ToolError, ToolRegistry
from workflows.language import expr
from workflows.language.agent import AgentSpec, AgentToolSpec, may_open_gates
from workflows.language.definition import StepSpec
from workflows.language.issues import Report, indexed

# The tool each model turn calls.
MODEL_TOOL = "llm.chat"
# What a `when` condition reads: the call's arguments (after the step's fixed ones).
WHEN_ROOT = "args"


def check_agents(steps: list[StepSpec | None], tools: ToolRegistry | None, report: Report) -> None:
    for i, s in indexed(steps):
        if s.agent is None:
            continue
        base = f"steps[{i}].agent"
        if tools is not None:
            try:
                s.agent.resolved_model = tools.resolve(MODEL_TOOL).ref
            except ToolError as err:
                report.add(base, f"an agent step asks its model through {MODEL_TOOL}: {err}")
            for k, entry in enumerate(s.agent.tools):
                _pin(s, entry, tools, f"{base}.tools[{k}]", report)
        _check_entries(s, s.agent, base, report, pinned=tools is not None)


def _check_entries(
    s: StepSpec, agent: AgentSpec, base: str, report: Report, *, pinned: bool
) -> None:
    """Names, conditions, and (once the tools' risks are known) who decides what may wait."""
    seen: dict[str, int] = {}
    for k, entry in enumerate(agent.tools):
        where = f"{base}.tools[{k}]"
        if entry.function in seen:
            first = agent.tools[seen[entry.function]].tool
            report.add(
                f"{where}.tool",
                f"{entry.tool!r} is offered to the model as function {entry.function!r}, like "
                f"{first!r} (tools[{seen[entry.function]}]): list each tool once",
            )
        seen.setdefault(entry.function, k)
        if entry.when is not None:
            _check_when(entry.when, entry.policy, f"{where}.when", report)
        decided = entry.approval is not None or s.approval is not None
        if pinned and entry.resolved_tool and may_open_gates(agent, entry) and not decided:
            report.add(
                where,
                f"calls of {entry.tool!r} may wait at a gate (its policy, `when` or risk), but "
                "no one is named to decide them: give the entry or the step an "
                "`approval: {approvers: [...]}`, or set `policy: auto` or `deny`",
            )


def _check_when(text: str, policy: str | None, path: str, report: Report) -> None:
    if policy is None:
        report.add(path, "`when` says when the entry's `policy` applies: give a policy")
    try:
        node = expr.parse(text)
    except expr.ExpressionError as err:
        report.add(path, f"bad condition: {err}")
        return
    for p in expr.paths(node):
        if p.split(".")[0] != WHEN_ROOT:
            report.add(
                path, f"{p!r}: `when` reads the call's arguments only, as `{WHEN_ROOT}.<field>`"
            )


def _pin(
    s: StepSpec, entry: AgentToolSpec, tools: ToolRegistry, where: str, report: Report
) -> None:
    """What runs and what the model is offered, from the registry."""
    try:
        found = tools.resolve(entry.tool)
    except ToolError as err:
        report.add(f"{where}.tool", str(err))
        return
    schema = found.input_model.model_json_schema()
    props = schema.get("properties")
    fields = props if isinstance(props, dict) else {}
    extra = schema.get("additionalProperties", True) is not False
    unknown = [k for k in entry.with_ if k not in fields]
    if unknown and not extra:
        report.add(
            f"{where}.with", f"tool {found.ref} has no input field {', '.join(map(repr, unknown))}"
        )
    entry.resolved_tool = found.ref
    entry.description = found.description[:2_000]
    entry.parameters = _offered(schema, set(entry.with_))
    entry.risk = found.risk if isinstance(found.risk, str) else None
    entry.local = found.local and s.task_queue is None and s.heartbeat_timeout is None


def _offered(schema: dict[str, Any], fixed: set[str]) -> dict[str, Any]:
    """The tool's input schema as the model is offered it: without the fields the step fixes."""
    out = {k: v for k, v in schema.items() if k != "title"}
    props = schema.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: v for k, v in props.items() if k not in fixed}
    required = schema.get("required")
    if isinstance(required, list):
        out["required"] = [k for k in required if k not in fixed]
    return out
