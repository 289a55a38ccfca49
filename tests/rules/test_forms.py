"""A gate's form: the subset of JSON Schema a definition may declare, the answers a decision may
carry, what the gate keeps of them and how later steps read them."""

from __future__ import annotations

from typing import Any

import pytest

from activities.documents import canonical_json
from tests.rules.sim import Sim
from workflows.language.forms import field_issue, form_issues
from workflows.language.limits import (
    MAX_FORM_BYTES,
    MAX_FORM_FIELDS,
    MAX_FORM_STRING_CHARS,
    MAX_RESPONSE_BYTES,
)
from workflows.rules import forms
from workflows.rules.scheduler import Invoke

FORM: dict[str, Any] = {
    "type": "object",
    "title": "Change record",
    "properties": {
        "ticket": {"type": "string", "title": "Ticket", "minLength": 3, "maxLength": 20},
        "risk": {"type": "string", "enum": ["low", "high"], "enumNames": ["Low", "High"]},
        "reason": {
            "type": "string",
            "oneOf": [{"const": "fix", "title": "A fix"}, {"const": "feature", "title": "New"}],
            "default": "fix",
        },
        "window": {"type": "string", "format": "date"},
        "at": {"type": "string", "format": "date-time"},
        "owner": {"type": "string", "format": "email"},
        "link": {"type": "string", "format": "uri"},
        "hosts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "share": {"type": "number", "minimum": 0, "maximum": 1},
        "notify": {"type": "boolean", "default": True, "description": "tell the channel"},
    },
    "required": ["ticket", "risk"],
}


def test_a_form_of_every_allowed_kind_is_valid() -> None:
    """Strings with formats and lengths, enums in both spellings, numbers, integers and booleans
    with titles, descriptions and defaults are the subset, and nothing in it is refused."""
    assert form_issues(FORM) == []


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"$ref": "#/x"}, "form.$ref", 'keyword "$ref" is not allowed in a gate form'),
        ({"type": "array"}, "form.type", 'a gate form has type "object"'),
        ({"properties": {}}, "form.properties", "lists its fields under properties"),
        ({"required": ["nope"]}, "form.required", "'nope' is not a field of the form"),
        ({"additionalProperties": False}, "form.additionalProperties", "is not allowed"),
    ],
)
def test_form_outside_the_subset_is_refused_naming_the_keyword(
    change: dict[str, Any], path: str, message: str
) -> None:
    """A top-level keyword or value outside the subset is named with its path."""
    found = form_issues({**FORM, **change})
    assert any(p == path and message in m for p, m in found), found


@pytest.mark.parametrize(
    ("field", "path", "message"),
    [
        ({"type": "string", "$ref": "#/d"}, "form.properties.f.$ref", '"$ref" is not allowed'),
        ({"type": "object"}, "form.properties.f.type", "one of string, number"),
        ({"type": "array", "items": {}}, "form.properties.f.type", "one of string"),
        ({"type": "string", "pattern": "a+"}, "form.properties.f.pattern", "not allowed"),
        ({"type": "string", "format": "ipv4"}, "form.properties.f.format", "one of date"),
        ({"type": "integer", "minimum": 1.5}, "form.properties.f.minimum", "an integer"),
        ({"type": "number", "minimum": 2, "maximum": 1}, "form.properties.f.minimum", "more"),
        ({"type": "boolean", "minimum": 1}, "form.properties.f.minimum", "not allowed"),
        ({"type": "string", "enum": []}, "form.properties.f.enum", "1 to 100 strings"),
        ({"type": "string", "enum": [1, 2]}, "form.properties.f.enum", "is a string"),
        ({"type": "string", "enum": ["a", "a"]}, "form.properties.f.enum", "twice"),
        (
            {"type": "string", "enum": ["a"], "enumNames": ["A", "B"]},
            "form.properties.f.enumNames",
            "a title for each",
        ),
        (
            {"type": "string", "oneOf": [{"const": "a", "title": "A", "x": 1}]},
            "form.properties.f.oneOf[0].x",
            "not allowed",
        ),
        (
            {"type": "string", "maxLength": MAX_FORM_STRING_CHARS + 1},
            "form.properties.f.maxLength",
            "an integer from 0",
        ),
        ({"type": "integer", "default": "3"}, "form.properties.f.default", "an integer"),
        (
            {"type": "string", "enum": ["a"], "default": "b"},
            "form.properties.f.default",
            "one of a",
        ),
        ({"type": "string", "title": 3}, "form.properties.f.title", "a string"),
        ("text", "form.properties.f", "a JSON Schema object"),
    ],
)
def test_field_outside_the_subset_is_refused_naming_its_path(
    field: Any, path: str, message: str
) -> None:
    """Each field keyword or value outside the subset is named with its path under the form."""
    found = form_issues({"type": "object", "properties": {"f": field}})
    assert any(p == path and message in m for p, m in found), found


def test_form_bounds_fields_names_and_bytes() -> None:
    """More than MAX_FORM_FIELDS fields, a name no reference could read, or more than
    MAX_FORM_BYTES of JSON are refused."""
    many = {f"f{i}": {"type": "boolean"} for i in range(MAX_FORM_FIELDS + 1)}
    assert form_issues({"type": "object", "properties": many})[0][1].startswith("at most 32")
    bad_name = form_issues({"type": "object", "properties": {"a.b": {"type": "boolean"}}})
    assert bad_name[0][0] == "form.properties.a.b" and "a field's name" in bad_name[0][1]
    text = "d" * 900
    big = {f"f{i}": {"type": "string", "description": text} for i in range(10)}
    assert form_issues({"type": "object", "properties": big}) == [
        ("form", f"a gate form takes at most {MAX_FORM_BYTES} bytes of JSON")
    ]


def test_a_form_that_is_not_a_mapping_is_refused() -> None:
    """A list or a string in place of the form is named as such."""
    assert form_issues(["x"]) == [
        ("form", "a gate form is a JSON Schema object: {type: object, properties: {...}}")
    ]


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("window", "2026-03-01", ["2026-02-30", "01/03/2026", "2026-03-01T10:00:00Z", 20260301]),
        ("at", "2026-03-01T10:00:00Z", ["2026-03-01", "2026-03-01T10:00:00", "soon"]),
        ("at", "2026-03-01T10:00:00.5+02:00", ["2026-13-01T10:00:00Z"]),
        ("owner", "ann@example.org", ["ann", "ann@localhost", "a b@example.org", "@x.org"]),
        ("link", "https://tickets.example/CHG-1", ["not a uri", "tickets", "http://[::1"]),
        ("hosts", 3, [0, 11, 2.5, True, "3"]),
        ("share", 0.5, [-0.1, 1.5, float("nan"), False]),
        ("notify", False, [0, "false", None]),
        ("risk", "high", ["HIGH", "medium", 1]),
        ("reason", "feature", ["A fix", "other"]),
        ("ticket", "CHG-1", ["ab", "x" * 21, 12]),
    ],
)
def test_field_issue_takes_exactly_what_the_field_says(
    field: str, good: Any, bad: list[Any]
) -> None:
    """Each field takes values of its type within its format, bounds and choices, and no other."""
    schema = FORM["properties"][field]
    assert field_issue(schema, good) is None
    for value in bad:
        assert field_issue(schema, value) is not None, value


def test_a_string_without_max_length_is_bounded() -> None:
    """A text answer is at most MAX_FORM_STRING_CHARS characters even when the field names none."""
    assert field_issue({"type": "string"}, "x" * MAX_FORM_STRING_CHARS) is None
    assert "at most" in (field_issue({"type": "string"}, "x" * (MAX_FORM_STRING_CHARS + 1)) or "")


def test_response_issues_name_each_field() -> None:
    """Unknown fields, wrong answers and missing required fields are each named as
    `response.<field>`."""
    found = forms.response_issues(FORM, {"ticket": "x", "extra": 1, "hosts": 99})
    assert found == [
        ("response.ticket", "at least 3 characters"),
        ("response.extra", "is not a field of the gate's form"),
        ("response.hosts", "must be at most 10"),
        ("response.risk", "is required by the gate's form"),
    ]


def test_refusal_by_action_and_form() -> None:
    """approve and modify need a response at a gate with a form; reject may carry one (checked the
    same way); a gate without a form takes none; a response too large is refused."""
    good = {"ticket": "CHG-1", "risk": "low"}
    assert forms.refusal(FORM, "g", "approve", good) is None
    assert (
        forms.refusal(FORM, "g", "approve", None)
        == "approve at gate 'g' needs a response to its form"
    )
    assert forms.refusal(FORM, "g", "modify", None) is not None
    assert forms.refusal(FORM, "g", "reject", None) is None
    assert forms.refusal(FORM, "g", "reject", {"risk": "x"}) == (
        "response.risk: must be one of low, high; response.ticket: is required by the gate's form"
    )
    assert forms.refusal(None, "g", "approve", None) is None
    assert forms.refusal(None, "g", "approve", {}) == (
        "gate 'g' has no form: a decision there carries no response"
    )
    loose = {"type": "object", "properties": {f"t{i}": {"type": "string"} for i in range(5)}}
    big = {f"t{i}": "x" * 2_000 for i in range(5)}
    assert len(canonical_json(big)) > MAX_RESPONSE_BYTES
    assert forms.refusal(loose, "g", "approve", big) == (
        f"response: at most {MAX_RESPONSE_BYTES} bytes of JSON"
    )


def test_a_response_of_exactly_the_byte_bound_is_taken() -> None:
    """A response whose JSON takes exactly MAX_RESPONSE_BYTES is taken; one byte more is not."""
    loose = {"type": "object", "properties": {f"t{i}": {"type": "string"} for i in range(5)}}
    answers = {f"t{i}": "x" * 1_600 for i in range(5)}
    answers["t4"] += "x" * (MAX_RESPONSE_BYTES - len(canonical_json(answers).encode()))
    assert len(canonical_json(answers).encode()) == MAX_RESPONSE_BYTES
    assert forms.refusal(loose, "g", "approve", answers) is None
    answers["t4"] += "x"
    assert forms.refusal(loose, "g", "approve", answers) is not None


def test_kept_fills_in_the_defaults_under_the_answers() -> None:
    """What is kept is the answers over the form's defaults; without a form, the response as is."""
    assert forms.kept(FORM, {"ticket": "CHG-1", "risk": "low", "hosts": 4}) == {
        "reason": "fix",
        "hosts": 4,
        "notify": True,
        "ticket": "CHG-1",
        "risk": "low",
    }
    assert forms.kept(None, None) is None
    assert forms.kept(FORM, None) is None


FORMED = """
name: f
steps:
  - id: review
    tool: t.x
    approval:
      approvers: ["role:ops"]
      quorum: %d
      form:
        type: object
        required: [ticket]
        properties:
          ticket: {type: string}
          hosts: {type: integer, default: 2}
  - id: apply
    tool: t.x
    needs: [review]
    with: {ticket: "${steps.review.gate.response.ticket}", n: "${steps.review.gate.response.hosts}"}
"""


def test_the_deciding_vote_response_reaches_the_next_step_as_data() -> None:
    """The vote that decides the gate gives it its response; each vote and the audit keep their
    own; the next step's input reads the answers, a `${...}` inside one left as text."""
    sim = Sim(FORMED % 2)
    sim.advance()
    assert sim.vote("review", "approve", actor="ann", response={"ticket": "CHG-1"}) is None
    assert sim.gate("review").response is None  # not decided yet
    sim.vote("review", "approve", actor="ben", response={"ticket": "${secret.TOKEN}", "hosts": 5})
    gate = sim.gate("review")
    assert gate.outcome == "approve"
    assert gate.response == {"ticket": "${secret.TOKEN}", "hosts": 5}
    assert [v.response for v in gate.votes] == [
        {"hosts": 2, "ticket": "CHG-1"},
        {"hosts": 5, "ticket": "${secret.TOKEN}"},
    ]
    audit = [e.response for e in sim.state.audit if e.kind == "decision"]
    assert audit == [{"hosts": 2, "ticket": "CHG-1"}, {"hosts": 5, "ticket": "${secret.TOKEN}"}]
    sim.succeed("review")
    (call,) = [e for e in sim.effects if isinstance(e, Invoke) and e.step == "apply"]
    assert call.args == {"ticket": "${secret.TOKEN}", "n": 5}
    assert call.slots == []  # nothing for the activity to fill: the text is data


def test_a_bad_response_is_refused_and_leaves_no_vote() -> None:
    """A response that does not answer the form is refused as bad_response naming the field, and
    the gate stays as it was."""
    sim = Sim(FORMED % 1)
    sim.advance()
    refusal = sim.vote("review", "approve", actor="ann", response={"hosts": "two"})
    assert refusal is not None and refusal.code == "bad_response"
    assert refusal.message == (
        "response.hosts: must be an integer; response.ticket: is required by the gate's form"
    )
    assert sim.gate("review").votes == [] and sim.gate("review").open
    missing = sim.vote("review", "approve", actor="ann")
    assert missing is not None and missing.message.startswith("approve at gate 'review' needs")
    assert sim.vote("review", "reject", actor="ann") is None
    assert sim.gate("review").outcome == "reject" and sim.gate("review").response is None
