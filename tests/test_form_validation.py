"""A definition's gate forms as validation sees them: the subset's mistakes with their full
paths, and references to a gate's response checked against the form they read."""

from __future__ import annotations

import pytest

from activities import default_registry
from activities.registry import ToolRegistry
from tests.test_validation import errors


@pytest.fixture(scope="module")
def tools() -> ToolRegistry:
    return default_registry(entry_points=False)


BASE = """
name: f
steps:
  - id: review
    tool: data.echo
    with: {value: 1}
    approval:
      approvers: ["role:ops"]
      form:
        type: object
        required: [ticket]
        properties:
          ticket: {type: string, title: Ticket%s}
  - id: apply
    tool: data.echo
    needs: [review]
    with: {value: "%s"}
"""


def test_a_good_form_and_a_reference_to_its_field_validate(tools: ToolRegistry) -> None:
    """A form in the subset, read by a later step through its gate's response, is valid."""
    assert errors(BASE % ("", "${steps.review.gate.response.ticket}"), tools) == []


def test_a_keyword_outside_the_subset_is_named_with_its_full_path(tools: ToolRegistry) -> None:
    """`$ref` in a field is refused at steps[0].approval.form.properties.ticket.$ref, alone."""
    found = errors(BASE % (", $ref: '#/x'", "x"), tools)
    assert found == [
        'steps[0].approval.form.properties.ticket.$ref: keyword "$ref" is not allowed in a gate form'
    ]


def test_a_form_mistake_is_reported_beside_other_gate_mistakes(tools: ToolRegistry) -> None:
    """A bad form does not hide a bad approver (each is reported where it is)."""
    doc = (BASE % (", format: ipv4", "x")).replace('["role:ops"]', '["ops"]')
    found = errors(doc, tools)
    assert (
        "steps[0].approval.form.properties.ticket.format: one of date, date-time, email, uri"
        in (found)
    )
    assert any(f.startswith("steps[0].approval.approvers") for f in found), found


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            "${steps.review.gate.response.tiket}",
            "'tiket' is not a field of step 'review''s gate form",
        ),
        ("${steps.apply.gate.response.x}", "is not upstream"),
        ("${steps.review.gate.answer}", "malformed reference"),
    ],
)
def test_a_reference_to_a_response_is_checked(tools: ToolRegistry, ref: str, message: str) -> None:
    """A reference names a field of the gate's form, of a step upstream, spelled as documented."""
    found = errors(BASE % ("", ref), tools)
    assert any(message in f for f in found), found


def test_a_reference_to_a_gate_without_a_form_is_refused(tools: ToolRegistry) -> None:
    """A step whose gate has no form (or a for_each step, whose gates are per item) has no
    response to read."""
    doc = BASE % ("", "${steps.review.gate.response.ticket}")
    no_form = doc.replace("      form:\n", "      formx:\n")
    assert any("formx" in f for f in errors(no_form, tools))
    plain = doc.split("      form:")[0] + doc.split("{type: string, title: Ticket}\n")[1]
    found = errors(plain, tools)
    assert found == [
        "steps[1].with.value: ${steps.review.gate.response.ticket}: step 'review' has no gate "
        "with a form (a for_each step's gates are per item: their responses are in the audit)"
    ], found
