"""Static validation of a definition: every mistake at once, each with its path and reason.

Used by the API and the worker at start-up, never inside workflow code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import ValidationError

from activities.registry import ToolError, ToolRegistry
from workflows import expr
from workflows.definition import CompensateSpec, Definition, StepSpec
from workflows.refs import RefError, find_refs, parse_ref


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Report:
    errors: list[Issue] = field(default_factory=list)
    definition: Definition | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.definition is not None

    def add(self, path: str, message: str) -> None:
        self.errors.append(Issue(path, message))


def loc_to_path(loc: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    """('steps', 2, 'needs') -> 'steps[2].needs'."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_issues(err: ValidationError, prefix: str = "") -> list[Issue]:
    issues = []
    for e in err.errors():
        loc = [p for p in e["loc"] if p not in ("function-after[_check_duration(), str]",)]
        msg = e["msg"].removeprefix("Value error, ")
        issues.append(Issue(loc_to_path(loc, prefix), msg))
    return issues


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
    try:
        definition: Definition | None = Definition.model_validate(raw)
    except ValidationError as err:
        definition = None
        report.errors.extend(_pydantic_issues(err))
    steps: list[StepSpec | None] = list(definition.steps) if definition else _parse_steps_alone(raw)
    given = raw.get("input")
    schema: dict[str, Any] = given if isinstance(given, dict) else {"type": "object"}
    _check_schema(schema, report)
    _check_graph(steps, report)
    _check_tools(steps, tools, report)
    _check_pipelines(steps, catalog, raw.get("name"), report)
    _check_references(steps, schema, raw, report)
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


def _indexed(steps: list[StepSpec | None]) -> list[tuple[int, StepSpec]]:
    return [(i, s) for i, s in enumerate(steps) if s is not None]


def _check_schema(schema: dict[str, Any], report: Report) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        report.add("input", f"not a valid JSON Schema: {err.message}")


def _check_graph(steps: list[StepSpec | None], report: Report) -> None:
    first: dict[str, int] = {}
    for i, s in _indexed(steps):
        if s.id in first:
            report.add(
                f"steps[{i}].id", f"duplicate step id {s.id!r} (first at steps[{first[s.id]}])"
            )
        else:
            first[s.id] = i
    for i, s in _indexed(steps):
        for need in s.needs:
            if need not in first:
                report.add(f"steps[{i}].needs", f"unknown step {need!r}")
            elif need == s.id:
                report.add(f"steps[{i}].needs", f"step {s.id!r} cannot need itself")
    cycle = find_cycle(
        {s.id: [n for n in s.needs if n in first and n != s.id] for _, s in _indexed(steps)}
    )
    if cycle:
        report.add(f"steps[{first[cycle[0]]}].needs", "cycle: " + " -> ".join(cycle))


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One dependency cycle as a closed path (a -> b -> a), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _check_tools(steps: list[StepSpec | None], tools: ToolRegistry | None, report: Report) -> None:
    if tools is None:
        return
    for i, s in _indexed(steps):
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
                holder.resolved_tool = tools.resolve(holder.tool or "").ref
            except ToolError as err:
                report.add(path, str(err))


def _check_pipelines(
    steps: list[StepSpec | None], catalog: Mapping[str, Any] | None, own: Any, report: Report
) -> None:
    for i, s in _indexed(steps):
        if s.pipeline is None:
            continue
        name = s.pipeline.partition("@")[0]
        if name == own:
            report.add(f"steps[{i}].pipeline", f"pipeline {name!r} cannot run itself")
        elif catalog is not None and name not in catalog:
            known = ", ".join(sorted(catalog)) or "none"
            report.add(f"steps[{i}].pipeline", f"unknown pipeline {name!r} (catalog has: {known})")


def upstream(steps: list[StepSpec | None]) -> dict[str, set[str]]:
    """For each step, every step it transitively needs."""
    needs = {s.id: set(s.needs) for _, s in _indexed(steps)}
    memo: dict[str, set[str]] = {}

    def up(node: str, seen: frozenset[str]) -> set[str]:
        if node in memo:
            return memo[node]
        result: set[str] = set()
        for n in needs.get(node, ()):
            if n not in seen:
                result |= {n} | up(n, seen | {n})
        memo[node] = result
        return result

    return {sid: up(sid, frozenset({sid})) for sid in needs}


def _check_references(
    steps: list[StepSpec | None], schema: dict[str, Any], raw: dict[str, Any], report: Report
) -> None:
    ids = {s.id for _, s in _indexed(steps)}
    ups = upstream(steps)
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
    ctx = _RefChecker(ids, props, report)
    for i, s in _indexed(steps):
        base = f"steps[{i}]"
        visible = ups.get(s.id, set())
        ctx.values(s.with_, f"{base}.with", visible)
        if s.if_:
            ctx.expression(s.if_, f"{base}.if", visible)
        if s.compensate:
            ctx.values(s.compensate.with_, f"{base}.compensate.with", visible | {s.id})
        if s.approval and s.approval.auto_approve_if:
            own = {s.id} if s.approval.stage == "after" else set()
            ctx.expression(
                s.approval.auto_approve_if, f"{base}.approval.auto_approve_if", visible | own
            )
        if s.approval:
            for gate in s.approval.distinct_from:
                other = next((o for _, o in _indexed(steps) if o.id == gate), None)
                if other is None or other.approval is None:
                    report.add(
                        f"{base}.approval.distinct_from",
                        f"{gate!r} is not a step with an approval gate",
                    )
    ctx.values(raw.get("output"), "output", ids)
    if isinstance(raw.get("summary"), str):
        ctx.values(raw["summary"], "summary", set())


@dataclass
class _RefChecker:
    ids: set[str]
    props: dict[str, Any] | None
    report: Report

    def values(self, obj: Any, path: str, visible: set[str]) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                self.values(v, f"{path}.{k}", visible)
        elif isinstance(obj, list):
            for j, v in enumerate(obj):
                self.values(v, f"{path}[{j}]", visible)
        elif isinstance(obj, str):
            if "${" in obj and obj.count("${") != len(find_refs(obj)):
                self.report.add(path, f"malformed reference in {obj!r}: unclosed '${{'")
            for text in find_refs(obj):
                self.one(text, path, visible)

    def expression(self, text: str, path: str, visible: set[str]) -> None:
        try:
            node = expr.parse(text)
        except expr.ExpressionError as err:
            self.report.add(path, f"bad condition: {err}")
            return
        for p in expr.paths(node):
            self.one(p, path, visible, in_expression=True)

    def one(self, text: str, path: str, visible: set[str], in_expression: bool = False) -> None:
        try:
            ref = parse_ref(text)
        except RefError as err:
            self.report.add(path, str(err))
            return
        if in_expression and ref.root == "secret":
            self.report.add(path, "conditions cannot read secrets")
        if (
            ref.root == "input"
            and self.props is not None
            and ref.path
            and ref.path[0] not in self.props
        ):
            self.report.add(
                path, f"${{{text}}}: input field {ref.path[0]!r} is not in the input schema"
            )
        if ref.root == "steps" and ref.step is not None:
            if ref.step not in self.ids:
                self.report.add(path, f"${{{text}}}: unknown step {ref.step!r}")
            elif ref.step not in visible:
                self.report.add(
                    path, f"${{{text}}}: step {ref.step!r} is not upstream (add it to needs)"
                )


def validate_input(definition: Definition, data: Any) -> list[Issue]:
    """Check a run input against the definition's JSON Schema; every error with its path."""
    validator = jsonschema.Draft202012Validator(definition.input)
    issues = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        issues.append(Issue(loc_to_path(list(err.absolute_path), "input"), err.message))
    return issues
