"""The condition language and `${...}` references: safe, deterministic, typed."""

from __future__ import annotations

from typing import Any

import pytest

from activities.models import ARTIFACT_MARKER
from workflows.language import expr
from workflows.language.limits import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_NUMBER_CHARS
from workflows.language.refs import RefError, Scope

BIG = {"uri": "file:///a/big.json", "path": "run/outputs/big.json", "size": 9, "sha256": "ab"}


def scope() -> Scope:
    return Scope(
        {
            "env": "prod",
            "n": 3,
            "tags": ["a", "b"],
            "evil": "${secret.TOKEN}",
            "forged": {ARTIFACT_MARKER: {"path": "other-run/x"}, "path": []},
        },
        {
            "build": {"code": 0, "items": [{"id": 7}], "msg": "ok"},
            "big": {ARTIFACT_MARKER: BIG},
        },
        {"build": "succeeded"},
        {"workflow_id": "wf-1"},
        offloaded={"big": BIG},
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input.env == 'prod'", True),
        ("input.n > 2 and input.n <= 3", True),
        ('not (input.env == "prod") or input.n == 3', True),
        ("'a' in input.tags and 'z' not in input.tags", True),
        ("steps.build.output.items.0.id == 7", True),
        ("steps.build.status == 'succeeded'", True),
        ("len(input.tags) == 2 and upper(input.env) == 'PROD'", True),
        ("input.missing == null", True),
        ("input.n in [1, 2]", False),
        ("startswith(steps.build.output.msg, 'o') and contains(input.tags, 'b')", True),
        ("input.n >= 3.5", False),
    ],
)
def test_expression_evaluates(text: str, expected: Any) -> None:
    """Each supported construct evaluates as a reader would expect."""
    assert expr.evaluate(expr.parse(text), scope().lookup) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("input.n ==", "expected more input"),
        ("input.n = 3", "unexpected character"),
        ("(input.n == 3", "expected ')'"),
        ("", "empty expression"),
    ],
)
def test_expression_refuses_unsafe_or_malformed(text: str, message: str) -> None:
    """No code runs: unknown functions and malformed text are refused with the reason."""
    with pytest.raises(expr.ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expr.evaluate(expr.parse(text), scope().lookup)


def test_expression_type_mismatch_is_an_error_not_a_crash() -> None:
    """Ordering a string against a number is a clear error."""
    with pytest.raises(expr.ExpressionError, match="cannot compare str < int"):
        expr.evaluate(expr.parse("input.env < 3"), scope().lookup)


def test_reference_whole_string_keeps_type_and_embedded_is_formatted() -> None:
    """`${input.n}` stays an int; inside text it is formatted; lists become JSON."""
    s = scope()
    assert s.resolve("${input.n}") == 3
    assert s.resolve("${input.tags}") == ["a", "b"]
    assert (
        s.resolve("n=${input.n}, t=${input.tags}, ok=${steps.build.status}")
        == 'n=3, t=["a","b"], ok=succeeded'
    )
    assert s.resolve({"x": ["${run.workflow_id}"]}) == {"x": ["wf-1"]}


def test_reference_secrets_are_left_for_the_activity() -> None:
    """Secrets are never resolved in workflow code; the placeholder passes through."""
    assert scope().resolve("Bearer ${secret.TOKEN}") == "Bearer ${secret.TOKEN}"


def test_reference_into_artifact_becomes_lazy_marker() -> None:
    """A path into an offloaded output is handed to the activity as a marker with the rest of the
    path, and listed as a slot the activity fills."""
    value, slots = scope().resolve_slots({"body": {"x": "${steps.big.output.items.0.id}"}})
    assert value == {"body": {"x": {ARTIFACT_MARKER: BIG, "path": ["items", "0", "id"]}}}
    assert [(s.path, s.artifact_path, s.expect) for s in slots] == [
        (["body", "x"], ["items", "0", "id"], value["body"]["x"])
    ]
    assert slots[0].artifact is not None and slots[0].artifact.path == "run/outputs/big.json"


def test_secrets_in_the_definition_text_become_slots() -> None:
    """Secrets named by the definition's text are left as text and listed with the parts the
    activity assembles; data around them is literal text."""
    value, slots = scope().resolve_slots(
        {"h": ["Bearer ${secret.TOKEN}", "${secret.KEY}"], "u": "${input.env}/${secret.K2}?"}
    )
    assert value == {"h": ["Bearer ${secret.TOKEN}", "${secret.KEY}"], "u": "prod/${secret.K2}?"}
    assert [(s.path, s.parts) for s in slots] == [
        (["h", 0], [("text", "Bearer "), ("secret", "TOKEN")]),
        (["h", 1], [("secret", "KEY")]),
        (["u"], [("text", "prod"), ("text", "/"), ("secret", "K2"), ("text", "?")]),
    ]


def test_data_that_looks_like_a_secret_or_a_marker_is_data() -> None:
    """Run input holding `${secret.TOKEN}` or an artifact marker is copied as it is: no slot."""
    value, slots = scope().resolve_slots(
        {"a": "${input.evil}", "b": "x ${input.evil} y", "c": "${input.forged}"}
    )
    assert value["a"] == "${secret.TOKEN}" and value["b"] == "x ${secret.TOKEN} y"
    assert value["c"] == {ARTIFACT_MARKER: {"path": "other-run/x"}, "path": []}
    assert slots == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${input.nope}", "no field 'nope'"),
        ("${steps.build.output.items.5}", "index 5 out of range"),
        ("${steps.other.output}", "step 'other' has no output"),
        ("${steps.build.code}", "use steps.<id>.output"),
    ],
)
def test_reference_errors_name_the_reference(text: str, message: str) -> None:
    """A reference that cannot resolve says which reference and why."""
    with pytest.raises(RefError, match=message.replace("(", r"\(")):
        scope().resolve(text)


def value(text: str, **names: Any) -> Any:
    """Evaluate `text` with the given names as its paths (absent ones read as null)."""
    return expr.evaluate(expr.parse(text), names.get)


def error(text: str) -> str:
    """The message of the ExpressionError that parsing and evaluating `text` raises."""
    with pytest.raises(expr.ExpressionError) as caught:
        value(text, n=3, s="abc")
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("null", None),
        ("42", 42),
        ("-7", -7),
        ("2.5", 2.5),
        ("'it\\'s'", "it's"),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'back\\\\slash'", "back\\slash"),
        ("'a\"b'", 'a"b'),
        ("[]", []),
        ("[1, 'a', [true, null], n]", [1, "a", [True, None], 3]),
        ("[1,]", [1]),
        ("n", 3),
        ("  n  ", 3),
    ],
)
def test_literal_evaluates_to_its_json_value(text: str, expected: Any) -> None:
    """Literals, escaped strings and lists evaluate to exactly their value and type."""
    result = value(text, n=3)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not true", False),
        ("not false", True),
        ("not not n", True),
        ("true and false", False),
        ("false and true", False),
        ("true and true and false", False),
        ("n and s", True),
        ("true or false", True),
        ("false or true", True),
        ("false or false", False),
        ("0 or ''", False),
        ("true or true and false", True),
        ("(true or true) and false", False),
        ("not true == false", True),
        ("false and len(5)", False),
        ("true or len(5)", True),
    ],
)
def test_logic_evaluates_with_precedence_and_short_circuit(text: str, expected: bool) -> None:
    """`not` binds tighter than `and`, `and` tighter than `or`; both short-circuit to a bool."""
    assert value(text, n=3, s="x") is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n < 3", False),
        ("n < 4", True),
        ("n <= 3", True),
        ("n <= 2", False),
        ("n > 3", False),
        ("n > 2", True),
        ("n >= 3", True),
        ("n >= 4", False),
        ("n == 3", True),
        ("n != 3", False),
        ("n != 4", True),
        ("'b' in 'abc'", True),
        ("'b' not in 'abc'", False),
        ("4 not in [1, 2]", True),
        ("[n, 1] == [3, 1]", True),
        ("null == null", True),
        ("null != 0", True),
        ("null < 1", False),
        ("1 <= null", False),
        ("null > null", False),
        ("missing >= 0", False),
    ],
)
def test_comparison_evaluates_at_its_boundaries(text: str, expected: bool) -> None:
    """Each comparison holds exactly at its boundary; ordering against null is false."""
    assert value(text, n=3) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("len('abc')", 3),
        ("len([])", 0),
        ("lower('AbC')", "abc"),
        ("upper('AbC')", "ABC"),
        ("lower(5)", "5"),
        ("contains(['a', 'b'], 'b')", True),
        ("contains('abc', 'z')", False),
        ("startswith('abc', 'ab')", True),
        ("startswith('abc', 'b')", False),
        ("startswith(123, 12)", True),
    ],
)
def test_function_returns_its_result(text: str, expected: Any) -> None:
    """Each built-in function computes what its name says."""
    assert value(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("len(5)", "len() failed: object of type 'int' has no len()"),
        ("len()", "len() failed: len() takes exactly one argument (0 given)"),
        (
            "contains('abc', 1)",
            "contains() failed: 'in <string>' requires string as left operand, not int",
        ),
        ("1 in null", "cannot compare int in NoneType"),
        ("1 not in 2", "cannot compare int not in int"),
        ("s >= 1", "cannot compare str >= int"),
    ],
)
def test_evaluation_type_error_becomes_expression_error(text: str, message: str) -> None:
    """A function or comparison that fails on its operands' types raises ExpressionError only."""
    assert error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("1 2", "unexpected '2' in '1 2'"),
        ("n == 3 n", "unexpected 'n' in 'n == 3 n'"),
        ("'x' 'y' in 'xy'", "unexpected \"'y'\" in \"'x' 'y' in 'xy'\""),
        ("1 not", "unexpected 'not' in '1 not'"),
        ("1 not 2", "unexpected 'not' in '1 not 2'"),
        ("1 not in", "expected more input, got end of expression in '1 not in'"),
        ("n ==", "expected more input, got end of expression in 'n =='"),
        ("(1 == 1", "expected ')', got end of expression in '(1 == 1'"),
        ("(1 2)", "expected ')', got '2' in '(1 2)'"),
        ("[1 2]", "expected ',', got '2' in '[1 2]'"),
        ("[1, 2", "expected ',', got end of expression in '[1, 2'"),
        ("len('a' 'b')", "expected ',', got \"'b'\" in \"len('a' 'b')\""),
        ("and", "unexpected 'and' in 'and'"),
        ("n == or", "unexpected 'or' in 'n == or'"),
        (")", "unexpected ')' in ')'"),
        ("not", "expected more input, got end of expression in 'not'"),
        ("n = 3", "unexpected character at position 1: ' = 3'"),
        ("n == @@@@@@@@@@@@@@", "unexpected character at position 4: ' @@@@@@@@@'"),
        (
            "evil(1)",
            "unknown function 'evil' (known: contains, len, lower, startswith, upper)",
        ),
    ],
)
def test_parse_refuses_malformed_text_with_a_precise_message(text: str, message: str) -> None:
    """Malformed text, trailing tokens and unknown functions are refused, saying what and where."""
    assert error(text) == message


def test_parse_builds_the_documented_tree() -> None:
    """Comparisons, `not in`, calls, lists and logic parse to the node kinds evaluation uses."""
    n = expr.Node
    assert expr.parse("a.b != 1 and not c not in [2]") == n(
        "and",
        args=(
            n("cmp", "!=", (n("path", "a.b"), n("lit", 1))),
            n("not", args=(n("cmp", "not in", (n("path", "c"), n("list", args=(n("lit", 2),)))),)),
        ),
    )
    assert expr.parse("len(x) or y-z") == n(
        "or", args=(n("call", "len", (n("path", "x"),)), n("path", "y-z"))
    )


def test_paths_lists_every_path_read_in_order() -> None:
    """Validation sees every dotted path, inside calls, lists and logic, and no literal."""
    tree = expr.parse("input.a == 'input.b' and len(steps.x.output) > 1 or [run.pipeline, 2]")
    assert expr.paths(tree) == ["input.a", "steps.x.output", "run.pipeline"]
    assert expr.paths(expr.parse("1 == 1")) == []


def test_truthy_follows_json_emptiness() -> None:
    """null, false, 0, '' and empty lists and objects are false; anything else is true."""
    assert [expr.truthy(v) for v in (None, False, 0, "", [], {})] == [False] * 6
    assert [expr.truthy(v) for v in (True, 1, "0", [0], {"a": None})] == [True] * 5


def test_parse_nesting_exactly_the_depth_limit_and_refuse_one_more() -> None:
    """Parentheses and `not`s nest up to MAX_EXPRESSION_DEPTH levels with the whole expression;
    one level more is refused by name."""
    too_deep = f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels"
    inner = MAX_EXPRESSION_DEPTH - 1
    assert expr.evaluate(expr.parse("(" * inner + "1" + ")" * inner), scope().lookup) == 1
    assert expr.evaluate(expr.parse("not " * inner + "false"), scope().lookup) is True
    for text in ("(" * (inner + 1) + "1" + ")" * (inner + 1), "not " * (inner + 1) + "true"):
        with pytest.raises(expr.ExpressionError) as err:
            expr.parse(text)
        assert str(err.value) == too_deep


def test_parse_chain_as_tall_as_the_depth_limit_and_refuse_one_more() -> None:
    """A flat chain of `and`s is a tree one level taller per term: MAX_EXPRESSION_DEPTH terms
    parse, one more is refused."""
    assert expr.parse(" and ".join(["true"] * MAX_EXPRESSION_DEPTH)) is not None
    with pytest.raises(expr.ExpressionError) as err:
        expr.parse(" and ".join(["true"] * (MAX_EXPRESSION_DEPTH + 1)))
    assert str(err.value) == f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels"


def test_parse_depth_counts_again_after_a_nested_group_closes() -> None:
    """Closing a nested group or `not` chain returns to the depth around it, not to the top, so a
    sibling one level too deep is still refused."""
    # Inside one group (level 2), a closed sibling, then 63 more levels: 65 in all.
    deep = "(" * (MAX_EXPRESSION_DEPTH - 1) + "true" + ")" * (MAX_EXPRESSION_DEPTH - 1)
    for sibling in ("((true))", "(not not true)"):
        with pytest.raises(expr.ExpressionError) as err:
            expr.parse(f"({sibling} and {deep})")
        assert str(err.value) == f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels"


def test_parse_text_and_numbers_of_exactly_their_limits_and_refuse_longer() -> None:
    """An expression of MAX_EXPRESSION_CHARS characters and a number of MAX_NUMBER_CHARS digits
    parse; one character more is refused, naming the limit."""
    longest = "true" + " " * (MAX_EXPRESSION_CHARS - 4)
    assert expr.evaluate(expr.parse(longest), scope().lookup) is True
    with pytest.raises(expr.ExpressionError) as err:
        expr.parse(longest + " ")
    assert str(err.value) == f"expression longer than {MAX_EXPRESSION_CHARS} characters"
    assert expr.evaluate(expr.parse("9" * MAX_NUMBER_CHARS), scope().lookup) == int(
        "9" * MAX_NUMBER_CHARS
    )
    with pytest.raises(expr.ExpressionError) as err:
        expr.parse("9" * (MAX_NUMBER_CHARS + 1))
    assert str(err.value) == f"number longer than {MAX_NUMBER_CHARS} characters"
