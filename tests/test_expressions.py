"""The condition language and `${...}` references: safe, deterministic, typed."""

from __future__ import annotations

from typing import Any

import pytest

from activities.models import ARTIFACT_MARKER
from workflows import expr
from workflows.refs import RefError, Scope

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
