"""Static validation of a definition: every mistake at once, each with its path and reason.

Used by the API and the worker at start-up, never inside workflow code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from activities.documents import format_loc, json_issues
from activities.jsonschema_safe import schema_issues, value_issues
from activities.registry import ToolError, ToolRegistry
from workflows import expr
from workflows.definition import (
    PRIORITIES,
    CompensateSpec,
    Definition,
    PlanSpec,
    StepSpec,
    approval_conflicts,
    step_conflicts,
)
from workflows.durations import parse_duration
from workflows.limits import MAX_DEPTH, MAX_LOCAL_TIMEOUT, MAX_STEPS, some_names
from workflows.refs import LOCAL_ROOTS, RefError, find_refs, parse_ref
from workflows.reftypes import check_handoffs


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
    _check_tools(steps, tools, report)
    _check_pipelines(steps, catalog, raw.get("name"), report)
    _check_references(steps, schema, raw, report)
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


def _indexed(steps: list[StepSpec | None]) -> list[tuple[int, StepSpec]]:
    return [(i, s) for i, s in enumerate(steps) if s is not None]


def _check_schema(schema: dict[str, Any], report: Report) -> None:
    for loc, message in schema_issues(schema):
        report.add(loc_to_path(loc, "input"), message)


def _check_handoffs(
    steps: list[StepSpec | None], tools: ToolRegistry | None, report: Report
) -> None:
    """Declared output schemas, and references whose type can never fit where they go."""
    for path, message in check_handoffs(_indexed(steps), tools):
        report.add(path, message)


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
    """One dependency cycle as a closed path (a -> b -> a), or None. Depth-first without
    recursion: a chain of 1,200 steps listed last-first once overflowed Python's stack."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        path, branches = [root], [iter(graph.get(root, []))]
        state[root] = 1
        while branches:
            nxt = next(branches[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                branches.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                branches.append(iter(graph.get(nxt, [])))
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
    for i, s in _indexed(steps):
        if not isinstance(s.pipeline, str):
            continue  # none, or a plan: checked when it is made, at run time
        name = s.pipeline.partition("@")[0]
        if name == own:
            report.add(f"steps[{i}].pipeline", f"pipeline {name!r} cannot run itself")
        elif catalog is not None and name not in catalog:
            known = some_names(sorted(catalog))
            report.add(f"steps[{i}].pipeline", f"unknown pipeline {name!r} (catalog has: {known})")


def upstream(steps: list[StepSpec | None]) -> dict[str, set[str]]:
    """For each step, every step it transitively needs (itself too when on a cycle). Without
    recursion, each group of steps that need each other in turn handled once, ancestors kept as
    bit sets: linear in the edges, where the recursive version overflowed on long chains."""
    needs = {s.id: [n for n in s.needs if n != s.id] for _, s in _indexed(steps)}
    graph = {sid: [n for n in ns if n in needs] for sid, ns in needs.items()}
    bit = {sid: 1 << i for i, sid in enumerate(graph)}
    group_of: dict[str, int] = {}
    group_bits: list[int] = []
    for number, group in enumerate(_groups(graph)):
        bits = 0
        for member in group:
            group_of[member] = number
        for member in group:
            for n in graph[member]:
                bits |= bit[n] | (group_bits[group_of[n]] if group_of[n] != number else 0)
        group_bits.append(bits)
    ids = list(graph)
    # bin() lists the bits as text, lowest last: one pass per step instead of a shift per bit.
    return {sid: _members(ids, group_bits[group_of[sid]]) for sid in graph}


def _members(ids: list[str], bits: int) -> set[str]:
    return {ids[i] for i, b in enumerate(reversed(bin(bits)[2:])) if b == "1"}


def _groups(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative), each listed after every
    component it needs."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in graph:
        if root in index:
            continue
        enter(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    enter(nxt)
                    work.append((nxt, iter(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while not group or group[-1] != node:
                    group.append(stack.pop())
                    on_stack.discard(group[-1])
                found.append(group)
    return found


def _check_references(
    steps: list[StepSpec | None], schema: dict[str, Any], raw: dict[str, Any], report: Report
) -> None:
    ids = {s.id for _, s in _indexed(steps)}
    gated = {s.id for _, s in _indexed(steps) if s.approval is not None}
    ups = upstream(steps)
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
    declared = raw.get("secrets")
    ctx = _RefChecker(ids, props, report, set(declared) if isinstance(declared, list) else set())
    for i, s in _indexed(steps):
        base = f"steps[{i}]"
        visible = ups.get(s.id, set())
        each = {"item", "index"} if s.for_each is not None else set()
        loop = {"previous", "iteration"} if s.repeat is not None else set()
        ctx.local = frozenset(each | loop)
        ctx.values(s.with_, f"{base}.with", visible)
        if s.if_:
            ctx.expression(s.if_, f"{base}.if", visible)
        ctx.local = frozenset(each)
        if s.compensate:
            ctx.values(s.compensate.with_, f"{base}.compensate.with", visible | {s.id})
        if s.approval is not None:
            own = set() if s.approval.stage == "before" else {s.id}
            per_item = each if s.approval.per_item else set()
            ctx.local = frozenset(per_item)
            if s.approval.review:
                ctx.values(s.approval.review, f"{base}.approval.review", visible | own)
            _check_priority(ctx, s.approval.priority, f"{base}.approval.priority", visible | own)
        ctx.local = frozenset()
        for where, text in (("for_each", s.for_each), ("pipeline.definition", _plan_text(s))):
            if text is not None:
                ctx.reference(text, f"{base}.{where}", visible)
        if s.check is not None:
            ctx.local = frozenset(each | {"output"} | ({"iteration"} if s.repeat else set()))
            ctx.expression(s.check.condition, f"{base}.check.condition", visible | {s.id})
        if s.repeat is not None:
            ctx.local = frozenset({"output", "iteration"})
            ctx.expression(s.repeat.until, f"{base}.repeat.until", visible | {s.id})
        ctx.local = frozenset()
        if s.approval and s.approval.auto_approve_if:
            own = {s.id} if s.approval.stage == "after" else set()
            ctx.expression(
                s.approval.auto_approve_if, f"{base}.approval.auto_approve_if", visible | own
            )
        if s.approval and s.approval.notify:
            ctx.values(s.approval.notify.with_, f"{base}.approval.notify.with", visible)
        if s.approval:
            for gate in s.approval.distinct_from:
                if gate not in gated:
                    report.add(
                        f"{base}.approval.distinct_from",
                        f"{gate!r} is not a step with an approval gate",
                    )
    ctx.values(raw.get("output"), "output", ids, secrets=False)
    if isinstance(raw.get("summary"), str):
        ctx.values(raw["summary"], "summary", set(), secrets=False)


@dataclass
class _RefChecker:
    ids: set[str]
    props: dict[str, Any] | None
    report: Report
    declared: set[str]
    # Which of refs.LOCAL_ROOTS exist where the text being checked is (item, previous, ...).
    local: frozenset[str] = frozenset()

    def reference(self, text: str, path: str, visible: set[str]) -> None:
        """Text that must be exactly one reference (for_each, a plan's definition)."""
        refs = find_refs(text)
        if len(refs) != 1 or text.strip() != "${" + refs[0] + "}":
            self.report.add(
                path,
                f"must be one reference like ${{steps.<id>.output.<path>}}, got {_quote(text)}",
            )
            return
        self.one(refs[0], path, visible, secrets=False)

    def values(self, obj: Any, path: str, visible: set[str], *, secrets: bool = True) -> None:
        # Without recursion (depth is bounded earlier, but the walk should not depend on it);
        # children pushed last-first so that errors come in document order.
        todo: list[tuple[Any, str]] = [(obj, path)]
        while todo:
            item, where = todo.pop()
            if isinstance(item, dict):
                todo.extend((v, f"{where}.{k}") for k, v in reversed(list(item.items())))
            elif isinstance(item, list):
                todo.extend((v, f"{where}[{j}]") for j, v in reversed(list(enumerate(item))))
            elif isinstance(item, str):
                self.text(item, where, visible, secrets)

    def text(self, text: str, path: str, visible: set[str], secrets: bool) -> None:
        refs = find_refs(text)
        if "${" in text and text.count("${") != len(refs):
            self.report.add(path, f"malformed reference in {_quote(text)}: unclosed '${{'")
        for ref in refs:
            self.one(ref, path, visible, secrets=secrets)

    def expression(self, text: str, path: str, visible: set[str]) -> None:
        try:
            node = expr.parse(text)
        except expr.ExpressionError as err:
            self.report.add(path, f"bad condition: {err}")
            return
        for p in expr.paths(node):
            self.one(p, path, visible, in_expression=True)

    def one(
        self,
        text: str,
        path: str,
        visible: set[str],
        in_expression: bool = False,
        *,
        secrets: bool = True,
    ) -> None:
        try:
            ref = parse_ref(text)
        except RefError as err:
            self.report.add(path, str(err))
            return
        if ref.root in LOCAL_ROOTS and ref.root not in self.local:
            self.report.add(path, f"${{{text}}}: `{ref.root}` {_LOCAL_WHERE[ref.root]}")
        if ref.root == "secret":
            if in_expression:
                self.report.add(path, "conditions cannot read secrets")
            elif not secrets:
                self.report.add(path, f"${{{text}}}: the run's {path} cannot hold secrets")
            elif ref.path[0] not in self.declared:
                self.report.add(
                    path, f"${{{text}}}: secret {ref.path[0]!r} is not declared in `secrets:`"
                )
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


_LOCAL_WHERE = {
    "item": "exists only in a for_each step (its inputs, condition, check, gate)",
    "index": "exists only in a for_each step (its inputs, condition, check, gate)",
    "previous": "exists only in a repeat step's inputs",
    "output": "exists only in a step's check and repeat.until conditions",
    "iteration": "exists only in a repeat step (its inputs, check and until)",
}


def _plan_text(s: StepSpec) -> str | None:
    return s.pipeline.definition if isinstance(s.pipeline, PlanSpec) else None


def _check_priority(ctx: _RefChecker, priority: Any, path: str, visible: set[str]) -> None:
    if isinstance(priority, dict):
        for name, condition in priority.items():
            ctx.expression(condition, f"{path}.{name}", visible)
    elif isinstance(priority, str) and priority not in PRIORITIES:
        ctx.reference(priority, path, visible)


def _quote(text: str, limit: int = 200) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def validate_input(definition: Definition, data: Any) -> list[Issue]:
    """Check a run input against the definition's JSON Schema; every error with its path (at
    most jsonschema_safe.MAX_ERRORS). Bounded CPU, but not free: never call it in workflow code."""
    return [
        Issue(loc_to_path(loc, "input"), message)
        for loc, message in value_issues(definition.input, data)
    ]
