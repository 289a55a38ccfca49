"""Static validation of a definition: every mistake at once, each with its path and reason.

Used by the API and the worker at start-up, never inside workflow code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from activities.documents import format_loc, json_issues
from activities.jsonschema_safe import schema_issues, value_issues
from activities.registry import ToolError, ToolRegistry
from workflows.language.definition import (
    SECRETS_FORMS,
    CompensateSpec,
    Definition,
    StepSpec,
    approval_conflicts,
    step_conflicts,
)
from workflows.language.durations import parse_duration
from workflows.language.forms import form_issues
from workflows.language.graph import find_cycle
from workflows.language.issues import Issue, Report, indexed
from workflows.language.limits import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_LOCAL_TIMEOUT,
    MAX_STEPS,
    MAX_UNITS,
    some_names,
)
from workflows.language.reftypes import check_handoffs
from workflows.language.validation_agent import check_agents
from workflows.language.validation_refs import check_references

__all__ = ["Issue", "Report", "loc_to_path", "validate_definition", "validate_input"]


def loc_to_path(loc: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    """('steps', 2, 'needs') -> 'steps[2].needs'."""
    return format_loc(loc, prefix)


def _is_rule(loc: tuple[Any, ...], kind: str) -> bool:
    """An error from a step's or a gate's cross-field rules: reported by _check_rules instead."""
    rules = len(loc) == 2 or (len(loc) == 3 and loc[2] == "approval")
    return kind == "value_error" and loc[:1] == ("steps",) and rules


def _pydantic_issues(err: ValidationError, prefix: str = "") -> list[Issue]:
    issues = []
    for e in err.errors():
        if _is_rule(e["loc"], e["type"]):
            continue
        loc = [p for p in e["loc"] if p not in ("function-after[_check_duration(), str]",)]
        if loc[:1] == ["secrets"] and loc[1:2] and loc[1] in SECRETS_FORMS:
            del loc[1]  # which of the two forms of `secrets:` was read
        msg = e["msg"].removeprefix("Value error, ")
        issues.append(Issue(loc_to_path(loc, prefix), msg))
    return issues


def _check_rules(raw: dict[str, Any], report: Report) -> None:
    """Cross-field rules of every step and gate, from the raw values: pydantic runs a model's
    after-validators only when all its fields passed, which would hide these behind any field
    error (a bad approver hid a missing escalate_to)."""
    items = raw.get("steps")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        for message in step_conflicts(item):
            report.add(f"steps[{i}]", message)
        approval = item.get("approval")
        if isinstance(approval, dict):
            for message in approval_conflicts(approval):
                report.add(f"steps[{i}].approval", message)
            if approval.get("form") is not None:
                for path, why in form_issues(approval["form"]):
                    report.add(f"steps[{i}].approval.{path}", why)


def validate_definition(
    raw: Any,
    tools: ToolRegistry | None,
    catalog: Mapping[str, Any] | None = None,
) -> Report:
    """Check structure, the step graph, tools, references and conditions.

    `catalog` maps pipeline names that `pipeline:` steps may use to anything; when None those
    steps are not checked. On success `report.definition` is the model with tools pinned.
    """
    report = Report()
    if isinstance(raw, Definition):
        raw = raw.model_dump(by_alias=True, exclude_none=True)
    if not isinstance(raw, dict):
        report.add("", "a definition must be a mapping with name and steps")
        return report
    # Refused before any other check: these make the others slow or recursive.
    items = raw.get("steps")
    if isinstance(items, list) and len(items) > MAX_STEPS:
        report.add("steps", f"at most {MAX_STEPS} steps (got {len(items)})")
        return report
    unsafe = next(iter(json_issues(raw, MAX_DEPTH)), None)
    if unsafe is not None:
        report.add(loc_to_path(unsafe[0]), unsafe[1])
        return report
    try:
        definition: Definition | None = Definition.model_validate(raw)
    except ValidationError as err:
        definition = None
        report.errors.extend(_pydantic_issues(err))
        _check_rules(raw, report)
    steps: list[StepSpec | None] = list(definition.steps) if definition else _parse_steps_alone(raw)
    given = raw.get("input")
    schema: dict[str, Any] = given if isinstance(given, dict) else {"type": "object"}
    _check_schema(schema, report)
    _check_graph(steps, report)
    _check_units(steps, report)
    _check_tools(steps, tools, report)
    check_agents(steps, tools, report)
    _check_pipelines(steps, catalog, raw.get("name"), report)
    check_references(steps, schema, raw, report)
    _check_handoffs(steps, tools, report)
    if definition and not report.errors:
        report.definition = definition
    return report


def _parse_steps_alone(raw: dict[str, Any]) -> list[StepSpec | None]:
    """When the whole does not parse, still check the steps that do, keeping their positions."""
    parsed: list[StepSpec | None] = []
    items = raw.get("steps")
    for item in items if isinstance(items, list) else []:
        try:
            parsed.append(StepSpec.model_validate(item))
        except ValidationError:
            parsed.append(_partial_step(item))
    return parsed


def _partial_step(item: Any) -> StepSpec | None:
    """The well-formed parts of a step that failed to parse, so graph and reference checks still
    see its id, needs and inputs (its own errors are already reported)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None

    def typed(key: str, kind: type, default: Any) -> Any:
        value = item.get(key)
        return value if isinstance(value, kind) else default

    needs = [n for n in typed("needs", list, []) if isinstance(n, str)]
    return StepSpec.model_construct(
        id=item["id"],
        tool=typed("tool", str, None),
        pipeline=typed("pipeline", str, None),
        with_=typed("with", dict, {}),
        needs=needs,
        if_=typed("if", str, None),
        approval=None,
        compensate=None,
    )


def _check_schema(schema: dict[str, Any], report: Report) -> None:
    for loc, message in schema_issues(schema):
        report.add(loc_to_path(loc, "input"), message)


def _check_handoffs(
    steps: list[StepSpec | None], tools: ToolRegistry | None, report: Report
) -> None:
    """Declared output schemas, and references whose type can never fit where they go."""
    for path, message in check_handoffs(indexed(steps), tools):
        report.add(path, message)


def _check_graph(steps: list[StepSpec | None], report: Report) -> None:
    first: dict[str, int] = {}
    for i, s in indexed(steps):
        if s.id in first:
            report.add(
                f"steps[{i}].id", f"duplicate step id {s.id!r} (first at steps[{first[s.id]}])"
            )
        else:
            first[s.id] = i
    for i, s in indexed(steps):
        for need in s.needs:
            if need not in first:
                report.add(f"steps[{i}].needs", f"unknown step {need!r}")
            elif need == s.id:
                report.add(f"steps[{i}].needs", f"step {s.id!r} cannot need itself")
    cycle = find_cycle(
        {s.id: [n for n in s.needs if n in first and n != s.id] for _, s in indexed(steps)}
    )
    if cycle:
        report.add(f"steps[{first[cycle[0]]}].needs", "cycle: " + " -> ".join(cycle))


def _check_units(steps: list[StepSpec | None], report: Report) -> None:
    """A run keeps every step and every for_each item in one state, which must fit what it
    continues as new with: refuse a definition whose worst case holds more than MAX_UNITS, at
    the for_each step that crosses the bound."""
    units = len(steps)
    for i, s in enumerate(steps):
        if s is None or s.for_each is None:
            continue
        units += MAX_ITEMS
        if units > MAX_UNITS:
            report.add(
                f"steps[{i}].for_each",
                f"with this for_each (up to {MAX_ITEMS} items each) one run could hold {units} "
                f"steps and items, more than the {MAX_UNITS} it can keep: run some of them as "
                "child pipelines (`pipeline:`), which keep their items in runs of their own",
            )
            return


def _check_tools(steps: list[StepSpec | None], tools: ToolRegistry | None, report: Report) -> None:
    if tools is None:
        return
    for i, s in indexed(steps):
        targets: list[tuple[str, StepSpec | CompensateSpec]] = (
            [(f"steps[{i}].tool", s)] if s.tool else []
        )
        if s.compensate:
            targets.append((f"steps[{i}].compensate.tool", s.compensate))
        if s.approval and s.approval.notify:
            try:
                tools.resolve(s.approval.notify.tool)
            except ToolError as err:
                report.add(f"steps[{i}].approval.notify.tool", str(err))
        for path, holder in targets:
            try:
                found = tools.resolve(holder.tool or "")
            except ToolError as err:
                report.add(path, str(err))
                continue
            holder.resolved_tool = found.ref
            if holder is s:
                _check_local(s, found.local, f"steps[{i}]", report)


def _check_local(s: StepSpec, capable: bool, base: str, report: Report) -> None:
    """Pin whether the step runs as a local activity (the tool's default when it says nothing),
    and refuse what a local activity cannot do."""
    if s.local is None:
        fits = all(
            text is None or parse_duration(text) <= MAX_LOCAL_TIMEOUT
            for text in (s.timeout, s.total_timeout)
        )
        s.local = capable and fits and s.task_queue is None and s.heartbeat_timeout is None
        return
    if not s.local:
        return
    if not capable:
        report.add(
            f"{base}.local",
            f"tool {s.tool!r} cannot run as a local activity (it is not declared local)",
        )
    if s.task_queue is not None:
        report.add(
            f"{base}.local", "a local activity runs on the run's own worker: it takes no task_queue"
        )
    if s.heartbeat_timeout is not None:
        report.add(f"{base}.local", "a local activity cannot heartbeat: drop heartbeat_timeout")
    for where, text in (("timeout", s.timeout), ("total_timeout", s.total_timeout)):
        if text is not None and parse_duration(text) > MAX_LOCAL_TIMEOUT:
            report.add(
                f"{base}.{where}",
                f"a local activity runs at most {int(MAX_LOCAL_TIMEOUT.total_seconds())}s: "
                "make the step a regular activity (local: false) to wait longer",
            )


def _check_pipelines(
    steps: list[StepSpec | None], catalog: Mapping[str, Any] | None, own: Any, report: Report
) -> None:
    for i, s in indexed(steps):
        if not isinstance(s.pipeline, str):
            continue  # none, or a plan: checked when it is made, at run time
        name = s.pipeline.partition("@")[0]
        if name == own:
            report.add(f"steps[{i}].pipeline", f"pipeline {name!r} cannot run itself")
        elif catalog is not None and name not in catalog:
            known = some_names(sorted(catalog))
            report.add(f"steps[{i}].pipeline", f"unknown pipeline {name!r} (catalog has: {known})")


def validate_input(definition: Definition, data: Any) -> list[Issue]:
    """Check a run input against the definition's JSON Schema; every error with its path (at
    most jsonschema_safe.MAX_ERRORS). Bounded CPU, but not free: never call it in workflow code."""
    return [
        Issue(loc_to_path(loc, "input"), message)
        for loc, message in value_issues(definition.input, data)
    ]
