"""Hostile documents, definitions and inputs: each refused quickly with its path, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from activities import default_registry
from activities.documents import DocumentError, parse_document, parse_json
from activities.jsonschema_safe import MAX_WORK, schema_issues, value_issues
from activities.registry import ToolRegistry
from workflows.language import expr
from workflows.language.definition import Definition
from workflows.language.durations import parse_duration
from workflows.language.limits import MAX_DEPTH, MAX_STEPS
from workflows.language.validation import validate_definition, validate_input

# 342 bytes that expand to 9^9 (387 million) "lol"s in a loader that follows aliases.
ALIAS_BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.fixture(scope="module")
def tools() -> ToolRegistry:
    return default_registry(entry_points=False)


def errors(raw: dict[str, Any], tools: ToolRegistry) -> list[str]:
    return [str(e) for e in validate_definition(raw, tools).errors]


def step(sid: str, **fields: Any) -> dict[str, Any]:
    return {"id": sid, "tool": "data.echo", **fields}


def test_parse_document_refuses_alias_bomb() -> None:
    """A YAML alias bomb is refused from its event stream, before anything expands."""
    with pytest.raises(DocumentError, match="YAML anchors and aliases are not accepted"):
        parse_document(ALIAS_BOMB)
    with pytest.raises(DocumentError, match="anchors and aliases"):
        parse_document("x: &one 1\n")


def test_parse_document_refuses_deep_nesting_long_numbers_and_foreign_tags() -> None:
    """Nesting past MAX_DEPTH, a 5,000-digit number, NaN and !!binary are refused, saying where."""
    with pytest.raises(DocumentError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_document("a: " + "[" * 100 + "]" * 100)
    with pytest.raises(DocumentError, match="a number is at most 100 characters"):
        parse_document("timeout_s: " + "9" * 5000)
    with pytest.raises(DocumentError, match="NaN and Infinity") as nan:
        parse_document("x: {y: .nan}")
    assert nan.value.issues == [(("x", "y"), "NaN and Infinity are not JSON numbers")]
    with pytest.raises(DocumentError, match="tag"):
        parse_document("x: !!binary aGVsbG8=")
    assert parse_document("a: [1, {b: 'two'}]") == {"a": [1, {"b": "two"}]}


def test_parse_json_refuses_nan_long_numbers_deep_nesting_with_paths() -> None:
    """NaN (which became null), a 5,000-digit int, 1e999 and 300 levels are 422s with a loc;
    broken JSON is a syntax error."""
    cases = {
        b'{"input": {"n": NaN}}': (("input", "n"), "NaN is not a JSON number"),
        b'{"a": [1, ' + b"7" * 5000 + b"]}": (("a", 1), "a number is at most 100 characters"),
        b'{"a": 1e999}': (("a",), "number out of range"),
        b'{"a": "\\ud800"}': (("a",), "not valid Unicode (a lone surrogate)"),
    }
    for raw, issue in cases.items():
        with pytest.raises(DocumentError) as err:
            parse_json(raw)
        assert err.value.issues == [issue] and not err.value.syntax
    with pytest.raises(DocumentError, match="nested deeper") as deep:
        parse_json(b'{"x": ' + b"[" * 300 + b"]" * 300 + b"}")
    assert len(deep.value.issues[0][0]) == MAX_DEPTH
    with pytest.raises(DocumentError, match="line 1, column 6") as broken:
        parse_json(b'{"a":')
    assert broken.value.syntax
    assert parse_json(b'{"a": [1.5, true, null]}') == {"a": [1.5, True, None]}


def test_validate_reversed_chain_without_recursion(tools: ToolRegistry) -> None:
    """A chain listed last-first (each step needing the next) validates without RecursionError
    at the step limit, and 1,200 steps are refused by count."""
    n = MAX_STEPS
    chain = [step(f"s{i}", needs=[f"s{i + 1}"] if i < n - 1 else []) for i in range(n)]
    assert errors({"name": "chain", "steps": chain}, tools) == []
    longer = [step(f"s{i}", needs=[f"s{i + 1}"] if i < 1199 else []) for i in range(1200)]
    assert errors({"name": "chain", "steps": longer}, tools) == [
        f"steps: at most {MAX_STEPS} steps (got 1200)"
    ]


def test_validate_refuses_deeply_nested_condition(tools: ToolRegistry) -> None:
    """3,000 nested parentheses (a RecursionError before) and 600 (within the length limit)
    are refused at the condition's path."""
    deep = "(" * 3000 + "input.x" + ")" * 3000
    found = errors({"name": "c", "steps": [step("a", **{"if": deep})]}, tools)
    assert "steps[0].if: String should have at most 2000 characters" in found
    nested = "(" * 600 + "input.x" + ")" * 600
    found = errors({"name": "c", "steps": [step("a", **{"if": nested})]}, tools)
    assert found == ["steps[0].if: bad condition: expression nested deeper than 64 levels"]
    with pytest.raises(expr.ExpressionError, match="nested deeper"):
        expr.parse(" and ".join(["input.x"] * 100))
    with pytest.raises(expr.ExpressionError, match="number longer"):
        expr.parse("input.n == " + "1" * 500)


def test_validate_refuses_durations_beyond_a_year(tools: ToolRegistry) -> None:
    """`1000000000d` (an OverflowError before) and a gate timeout of 900,000,000 days are errors
    with their paths; a year is the most."""
    gate = {"approvers": ["role:ops"], "timeout": "900000000d", "on_timeout": "approve"}
    found = errors({"name": "d", "steps": [step("a", timeout="1000000000d", approval=gate)]}, tools)
    assert "steps[0].timeout: bad duration '1000000000d': at most 365d" in found
    assert "steps[0].approval.timeout: bad duration '900000000d': at most 365d" in found
    assert parse_duration("365d").days == 365
    with pytest.raises(ValueError, match="at least 1ms"):
        parse_duration("0.0001ms")


def test_validate_refuses_more_steps_than_temporal_can_run(tools: ToolRegistry) -> None:
    """2,500 parallel steps (past Temporal's 2,000 pending activities) and a max_parallel or
    max_output_bytes beyond the limits are refused."""
    wide = [step(f"s{i}") for i in range(2500)]
    assert errors({"name": "w", "steps": wide}, tools) == ["steps: at most 500 steps (got 2500)"]
    found = errors(
        {"name": "w", "max_parallel": 2500, "steps": [step("a", max_output_bytes=10**9)]}, tools
    )
    assert "max_parallel: Input should be less than or equal to 500" in found
    assert "steps[0].max_output_bytes: Input should be less than or equal to 1048576" in found


def test_validate_refuses_reference_with_huge_index(tools: ToolRegistry) -> None:
    """A reference with a 5,000-digit list index is refused at validation."""

    def refers(ref: str) -> dict[str, Any]:
        return {"name": "r", "steps": [step("a"), step("b", needs=["a"], **{"with": {"v": ref}})]}

    assert errors(refers("${steps.a.output.items.999999}"), tools) == []
    assert errors(refers("${steps.a.output.items." + "0" * 5000 + "1}"), tools) == [
        "steps[1].with.v: malformed reference: a list index has at most 6 digits"
    ]


def test_validate_reports_field_errors_and_gate_rules_together(tools: ToolRegistry) -> None:
    """A bad approver no longer hides a missing escalate_to (pydantic skips after-validators once
    a field failed), nor a bad tool hide a step with both tool and pipeline."""
    gate = {"approvers": ["bad"], "on_timeout": "escalate", "timeout": "1h"}
    both = {"id": "b", "tool": "data.echo", "pipeline": "other", "timeout": "soon"}
    found = errors({"name": "g", "steps": [step("a", approval=gate), both]}, tools)
    assert (
        "steps[0].approval.approvers: principals must look like role:<name> or user:<name>, "
        "got ['bad']" in found
    )
    assert "steps[0].approval: on_timeout: escalate needs escalate_to" in found
    assert "steps[1]: a step needs exactly one of 'tool', 'pipeline' or 'agent'" in found
    assert any(e.startswith("steps[1].timeout: bad duration") for e in found)
    users = {"approvers": ["user:a", "user:b"], "quorum": 3}
    assert errors({"name": "q", "steps": [step("a", approval=users)]}, tools) == [
        "steps[0].approval: quorum: 3 votes, but the approvers name only 2 users"
    ]


def test_validate_refuses_definition_nested_too_deep(tools: ToolRegistry) -> None:
    """A `with` nested past MAX_DEPTH is refused with the path where it goes too deep."""
    value: Any = 1
    for _ in range(100):
        value = {"k": value}
    found = errors({"name": "n", "steps": [step("a", **{"with": value})]}, tools)
    assert len(found) == 1 and found[0].startswith("steps[0].with.k.k.k")
    assert found[0].endswith(f"nested deeper than {MAX_DEPTH} levels")


def test_validate_refuses_patterns_re2_cannot_run_and_remote_refs(tools: ToolRegistry) -> None:
    """Backreferences and lookaround (backtracking only) and non-local or dangling $refs are
    refused with their path inside the input schema."""
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "pattern": "(a)\\1"},
            "b": {"$ref": "https://example.invalid/schema.json"},
            "c": {"$ref": "#/$defs/missing"},
        },
        "patternProperties": {"(?=x)": {}},
    }
    found = errors({"name": "s", "input": schema, "steps": [step("a")]}, tools)
    paths = {f.split(": ")[0] for f in found}
    assert paths == {
        "input.properties.a.pattern",
        "input.properties.b.$ref",
        "input.properties.c.$ref",
        "input.patternProperties.(?=x)",
    }
    assert schema_issues({"$ref": "#"}) == [((), "the schema refers to itself without end")]


def test_validate_input_runs_catastrophic_pattern_in_linear_time(tools: ToolRegistry) -> None:
    """`^(a+)+$` (7.6 s for 28 characters with backtracking) against 200,000 characters: RE2
    answers; a backtracking engine would not finish before the suite's timeout."""
    report = validate_definition(
        {
            "name": "p",
            "input": {"type": "object", "properties": {"x": {"pattern": "^(a+)+$"}}},
            "steps": [step("a")],
        },
        tools,
    )
    assert report.definition is not None
    issues = validate_input(report.definition, {"x": "a" * 200_000 + "!"})
    assert [i.path for i in issues] == ["input.x"]
    assert "does not match" in issues[0].message and len(issues[0].message) < 400
    assert validate_input(report.definition, {"x": "a" * 200_000}) == []


def test_validate_input_stops_exponential_schema_at_budget() -> None:
    """A schema that tries two recursive branches per level gives up after MAX_WORK steps with a
    clear issue instead of 2^40 evaluations."""
    branch = {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a", "z"]}
    schema = {"anyOf": [branch, dict(branch)]}
    assert schema_issues(schema) == []
    value: Any = {}
    for _ in range(40):
        value = {"a": value}
    definition = Definition.model_validate({"name": "e", "input": schema, "steps": [step("a")]})
    issues = validate_input(definition, value)
    assert [str(i) for i in issues] == [
        f"input: checking the value against the schema takes more than {MAX_WORK} steps"
    ]


def test_validate_input_refuses_input_nested_300_deep() -> None:
    """An input nested 300 deep is an issue at the path where it passes the limit."""
    value: Any = "leaf"
    for _ in range(300):
        value = [value]
    definition = Definition.model_validate({"name": "i", "steps": [step("a")]})
    issues = validate_input(definition, {"x": value})
    assert len(issues) == 1 and issues[0].path.startswith("input.x[0][0]")
    assert issues[0].message == f"nested deeper than {MAX_DEPTH} levels"


def test_validate_input_unique_items_is_not_quadratic() -> None:
    """uniqueItems over 50,000 objects finds the duplicate by hashing, JSON equality kept."""
    schema = {"type": "array", "uniqueItems": True}
    items: list[Any] = [{"n": i} for i in range(50_000)]
    assert value_issues(schema, items) == []
    assert value_issues(schema, [*items, {"n": 7.0}]) != []
    assert value_issues(schema, [1, True]) == []


def test_a_long_value_s_error_still_says_why() -> None:
    """A value too long to quote whole is cut in the message, and the keyword it broke is
    named after it (the reason came last in jsonschema's own message, and was cut with it)."""
    issues = value_issues({"type": "string", "maxLength": 10}, "x" * 5_000)
    assert len(issues) == 1
    message = issues[0][1]
    assert len(message) <= 300 and message.endswith("breaks maxLength: 10"), message
    short = value_issues({"type": "string", "maxLength": 3}, "abcd")
    assert short == [((), "'abcd' is too long")]
