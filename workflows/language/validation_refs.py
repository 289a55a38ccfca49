"""Validation of the references and conditions in a definition: each names a step that is
upstream, an input field that exists, a declared secret, a value the place allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows.language import expr
from workflows.language.agent import AgentToolSpec
from workflows.language.definition import PRIORITIES, PlanSpec, StepSpec
from workflows.language.graph import upstream
from workflows.language.issues import Report, indexed
from workflows.language.refs import LOCAL_ROOTS, RefError, find_refs, parse_ref, unclosed


def check_references(
    steps: list[StepSpec | None], schema: dict[str, Any], raw: dict[str, Any], report: Report
) -> None:
    ids = {s.id for _, s in indexed(steps)}
    gated = {s.id for _, s in indexed(steps) if s.approval is not None or _entry_gates(s)}
    ups = upstream({s.id: list(s.needs) for _, s in indexed(steps)})
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
    declared = raw.get("secrets")
    # Names only: a malformed entry (`secrets: [{}]`) is the model's error, not a crash here.
    names = (
        {d for d in declared if isinstance(d, str)} if isinstance(declared, list | dict) else set()
    )
    ctx = _RefChecker(ids, props, report, names, _forms(steps, raw))
    for i, s in indexed(steps):
        base = f"steps[{i}]"
        visible = ups.get(s.id, set())
        each = {"item", "index"} if s.for_each is not None else set()
        loop = {"previous", "iteration"} if s.repeat is not None else set()
        ctx.local = frozenset(each | loop)
        ctx.values(s.with_, f"{base}.with", visible)
        if s.if_:
            ctx.expression(s.if_, f"{base}.if", visible)
        if s.agent is not None:
            ctx.values(s.agent.input, f"{base}.agent.input", visible)
            for k, entry in enumerate(s.agent.tools):
                ctx.values(entry.with_, f"{base}.agent.tools[{k}].with", visible)
                if entry.approval is not None and entry.approval.review:
                    where = f"{base}.agent.tools[{k}].approval.review"
                    ctx.values(entry.approval.review, where, visible)
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
        specs = [("approval", s.approval)] + [
            (f"agent.tools[{k}].approval", e.approval) for k, e in enumerate(_entries(s))
        ]
        for where, spec in specs:
            for gate in spec.distinct_from if spec is not None else []:
                if gate not in gated:
                    report.add(
                        f"{base}.{where}.distinct_from",
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
    # Steps whose gate has a form, with its fields (`${steps.<id>.gate.response.<field>}`); None:
    # the step's gate did not parse (its own errors are reported), so its fields are unknown.
    forms: dict[str, set[str] | None]
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
        if unclosed(text):
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
            elif ref.field == "gate":
                self.response(ref.step, ref.path, text, path)

    def response(self, step: str, into: tuple[str, ...], text: str, path: str) -> None:
        if step in self.forms and self.forms[step] is None:
            return
        fields = self.forms.get(step)
        if fields is None:
            self.report.add(
                path,
                f"${{{text}}}: step {step!r} has no gate with a form (a for_each step's "
                "gates are per item: their responses are in the audit)",
            )
        elif into and into[0] not in fields:
            self.report.add(
                path, f"${{{text}}}: {into[0]!r} is not a field of step {step!r}'s gate form"
            )


_LOCAL_WHERE = {
    "item": "exists only in a for_each step (its inputs, condition, check, gate)",
    "index": "exists only in a for_each step (its inputs, condition, check, gate)",
    "previous": "exists only in a repeat step's inputs",
    "output": "exists only in a step's check and repeat.until conditions",
    "iteration": "exists only in a repeat step (its inputs, check and until)",
}


def _forms(steps: list[StepSpec | None], raw: dict[str, Any]) -> dict[str, set[str] | None]:
    """Steps with one gate (not a for_each step's, per item) that has a form, and its fields;
    steps whose gate did not parse, with None."""
    out: dict[str, set[str] | None] = {}
    items = raw.get("steps")
    for i, s in indexed(steps):
        given = items[i] if isinstance(items, list) and i < len(items) else None
        if s.approval is None and isinstance(given, dict) and given.get("approval") is not None:
            out[s.id] = None
            continue
        form = s.approval.form if s.approval is not None and s.for_each is None else None
        props = form.get("properties") if form is not None else None
        if isinstance(props, dict):
            out[s.id] = set(props)
    return out


def _entries(s: StepSpec) -> list[AgentToolSpec]:
    return list(s.agent.tools) if s.agent is not None else []


def _entry_gates(s: StepSpec) -> bool:
    return any(e.approval is not None for e in _entries(s))


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
