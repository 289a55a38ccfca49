"""Reference type checks at validation: a `with:` value that is exactly one
`${steps.X.output.<path>}` whose JSON type can never fit the tool input field it fills.

Only definite mismatches are reported. The source's types come from step X's `output_schema`
(the activity enforces it), else from `response_format.json_schema` for `llm.chat`'s
`output.json` (enforced by the tool), else from X's tool output model; a for_each step's output
is the list of its items' outputs. The target's come from the step's tool input model, with the
conversions pydantic makes when the tool validates its input (a numeric string fills an integer
field). Where either side is unknown nothing is said.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, PydanticUserError

from activities.documents import Loc, format_loc
from activities.jsonschema_safe import MAX_WORK, schema_issues, shared_work
from activities.models import _INDEX
from activities.registry import ToolError, ToolRegistry
from workflows.language.definition import StepSpec
from workflows.language.refs import REF, RefError, find_refs, parse_ref
from workflows.language.schema_types import Types, TypeWalk, describe

# Keyword evaluations for checking all output and reply schemas of one definition together (a
# schema of a few fields takes about ten): as much as one run input's check may take.
MAX_SCHEMA_WORK = MAX_WORK
# Schema nodes visited for one whole definition: past it the remaining references go unchecked
# (nothing is reported that was not found), so a hostile schema cannot make validation slow.
MAX_TYPE_WORK = 100_000
# What a tool input field of each JSON type accepts, as pydantic validates it (lax mode): only
# these pairs are ever reported, so a value pydantic would convert is never called a mismatch.
_ACCEPTS: dict[str, Types] = {
    "string": frozenset({"string"}),
    "integer": frozenset({"integer", "number", "string", "boolean"}),
    "number": frozenset({"integer", "number", "string", "boolean"}),
    "boolean": frozenset({"integer", "number", "string", "boolean"}),
    "object": frozenset({"object"}),
    "array": frozenset({"array"}),
    "null": frozenset({"null"}),
}


@dataclass(frozen=True)
class Source:
    """Where a reference's value comes from: a schema, the path into what it describes, and
    `each` when the step is a for_each (its output lists the items' outputs, null for an item
    that failed or was skipped; the schema describes one item's output)."""

    step: str
    schema: Any
    path: tuple[str, ...]
    label: str
    each: bool = False

    def known_from(self) -> str:
        return f"for_each step {self.step!r}" if self.each and not self.path else self.label

    def types(self, budget: list[int]) -> Types | None:
        walk = TypeWalk(self.schema, budget)
        if not self.each:
            return walk.types_at(self.schema, self.path)
        if not self.path:
            return frozenset({"array"})
        if not _INDEX.fullmatch(self.path[0]):
            return None  # not an index: the run fails to follow it, whatever the types
        one = walk.types_at(self.schema, self.path[1:])
        return None if one is None else one | {"null"}


@functools.lru_cache(maxsize=256)
def _model_schema(model: type[BaseModel], mode: str) -> dict[str, Any] | None:
    """Tool models are code: their schemas never change while the process runs. Outputs reach
    later steps serialized, so their schema is the serialization one."""
    try:
        return model.model_json_schema(mode="serialization" if mode == "output" else "validation")
    except PydanticUserError:
        return None  # a third-party model with a type JSON Schema cannot describe: unknown


def check_handoffs(
    steps: list[tuple[int, StepSpec]], tools: ToolRegistry | None
) -> list[tuple[str, str]]:
    """(path, message) for every unsafe `output_schema` or `llm.chat` reply schema, and for every
    reference whose type can never fit the input field it fills."""
    checker = _Checker(steps, tools)
    with shared_work(MAX_SCHEMA_WORK):
        checker.schemas()
    if tools is not None:
        checker.references(tools)
    return checker.found


@dataclass
class _Checker:
    steps: list[tuple[int, StepSpec]]
    tools: ToolRegistry | None
    found: list[tuple[str, str]] = field(default_factory=list)
    budget: list[int] = field(default_factory=lambda: [MAX_TYPE_WORK])
    # Per step id: its output_schema, and its llm.chat reply schema, when safe to walk.
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, dict[str, Any]] = field(default_factory=dict)

    def schemas(self) -> None:
        for i, s in self.steps:
            if isinstance(s.output_schema, dict):
                self._safe(s.output_schema, f"steps[{i}].output_schema", self.outputs, s.id)
            reply = _reply_schema(s) if self._tool(s.tool) == "llm.chat" else None
            if reply is not None:
                where = f"steps[{i}].with.response_format.json_schema"
                self._safe(reply, where, self.replies, s.id)

    def _safe(self, schema: Any, where: str, into: dict[str, Any], step_id: str) -> None:
        issues = schema_issues(schema)
        self.found += [(format_loc(loc, where), message) for loc, message in issues]
        if not issues:
            into[step_id] = schema

    def _tool(self, ref: str | None) -> str | None:
        if self.tools is None or not ref:
            return None
        try:
            return self.tools.resolve(ref).name
        except ToolError:
            return None  # reported by the tool check

    def references(self, tools: ToolRegistry) -> None:
        by_id = {s.id: s for _, s in self.steps}
        for i, s in self.steps:
            if s.tool and isinstance(s.with_, dict):
                self._values(tools, s.tool, s.with_, f"steps[{i}].with", by_id)
            comp = s.compensate
            if comp is not None and isinstance(comp.with_, dict):
                self._values(tools, comp.tool, comp.with_, f"steps[{i}].compensate.with", by_id)

    def _values(
        self,
        tools: ToolRegistry,
        tool_ref: str,
        with_: dict[str, Any],
        where: str,
        by_id: dict[str, StepSpec],
    ) -> None:
        try:
            tool = tools.resolve(tool_ref)
        except ToolError:
            return
        target = _model_schema(tool.input_model, "input")
        if target is None:
            return
        for loc, text in _whole_refs(with_):
            source = self._source(tools, text, by_id)
            if source is None:
                continue
            got = source.types(self.budget)
            takes = TypeWalk(target, self.budget).types_at(target, loc)
            if not got or not takes:
                continue
            accepted = frozenset().union(*(_ACCEPTS.get(t, frozenset()) for t in takes))
            if got & accepted:
                continue
            message = (
                f"{text.strip()} is {describe(got)} ({source.known_from()}), "
                f"but {tool.name} input {format_loc(loc)} takes {describe(takes, drop_null=True)}"
            )
            self.found.append((format_loc(loc, where), message))

    def _source(self, tools: ToolRegistry, text: str, by_id: dict[str, StepSpec]) -> Source | None:
        try:
            ref = parse_ref(text.strip()[2:-1])
        except RefError:
            return None  # reported by the reference check
        step = by_id.get(ref.step or "")
        if ref.field != "output" or step is None:
            return None
        # A repeat step's output is its last iteration's: typed as any one iteration's.
        each = step.for_each is not None
        label = " of each for_each item" if each else ""
        if step.output_schema is not None:
            schema = self.outputs.get(step.id)
            label = f"output_schema of {step.id!r}{label}"
            return None if schema is None else Source(step.id, schema, ref.path, label, each)
        if not step.tool:
            return None  # a child pipeline's output has no known shape without output_schema
        try:
            tool = tools.resolve(step.tool)
        except ToolError:
            return None
        reply = self.replies.get(step.id)
        into = 1 if each else 0  # where `json` would be in the path: after the item's index
        if reply is not None and ref.path[into : into + 1] in (("json",), ("parsed",)):
            label = f"response_format.json_schema of {step.id!r}{label}"
            path = ref.path[:into] + ref.path[into + 1 :]
            return Source(step.id, reply, path, label, each)
        schema = _model_schema(tool.output_model, "output")
        label = f"{tool.ref} output{label}"
        return None if schema is None else Source(step.id, schema, ref.path, label, each)


def _reply_schema(step: StepSpec) -> dict[str, Any] | None:
    """The JSON Schema an `llm.chat` step's reply is held to, when the definition writes it out
    (without references: those are resolved at run time)."""
    fmt = step.with_.get("response_format") if isinstance(step.with_, dict) else None
    schema = fmt.get("json_schema") if isinstance(fmt, dict) else None
    return schema if isinstance(schema, dict) and not find_refs(schema) else None


def _whole_refs(obj: Any) -> Iterator[tuple[Loc, str]]:
    """Every string that is exactly one `${...}` reference, with its loc; without recursion."""
    todo: list[tuple[Loc, Any]] = [((), obj)]
    while todo:
        loc, item = todo.pop()
        if isinstance(item, dict):
            todo.extend(((*loc, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            todo.extend(((*loc, j), v) for j, v in reversed(list(enumerate(item))))
        elif isinstance(item, str) and REF.fullmatch(item.strip()):
            yield loc, item
