"""The terminal client's side of gate forms and the inbox: answers asked field by field (an
input callable stands in for the terminal), `--response` parsed, and the inbox line it prints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from api.cli_forms import MAX_TRIES, FormError, ask, parse_response
from api.cli_inbox import inbox_row
from api.schemas.approvals import InboxItem
from workflows.models import VoteLine

FORM: dict[str, Any] = {
    "type": "object",
    "title": "Change record",
    "required": ["ticket", "risk", "ok"],
    "properties": {
        "ticket": {"type": "string", "title": "Ticket", "minLength": 3},
        "risk": {
            "type": "string",
            "oneOf": [{"const": "low", "title": "Low risk"}, {"const": "high", "title": "High"}],
        },
        "hosts": {"type": "integer", "minimum": 1, "default": 2},
        "share": {"type": "number"},
        "ok": {"type": "boolean", "description": "tested \x1b[31mred"},
    },
}


def terminal(lines: list[str]) -> tuple[Callable[[str], str], list[str]]:
    """A fake terminal: each read returns the next line; every prompt and message is recorded."""
    shown: list[str] = []
    typed = iter(lines)

    def read(prompt: str) -> str:
        shown.append(prompt)
        return next(typed)

    return read, shown


def test_ask_types_each_answer_and_leaves_defaults_to_the_run() -> None:
    """Each field is asked in turn and typed as its schema says (a choice by its number, a
    boolean as yes/no); an empty answer leaves a defaulted or optional field out."""
    read, shown = terminal(["CHG-1", "2", "", "", "yes"])
    assert ask(FORM, read, shown.append) == {"ticket": "CHG-1", "risk": "high", "ok": True}
    assert shown[0] == "Change record"
    assert "  1) Low risk" in shown and "  2) High" in shown
    assert "hosts [integer, default 2]: " in shown and "share [number, optional]: " in shown
    assert "  tested ?[31mred" in shown  # a terminal escape in a description is defused


def test_ask_repeats_a_field_until_its_answer_fits() -> None:
    """A wrong or missing answer is explained and asked again; the next field waits."""
    read, shown = terminal(["ab", "", "CHG-1", "medium", "low", "0", "", "1.5", "maybe", "no"])
    assert ask(FORM, read, shown.append) == {
        "ticket": "CHG-1",
        "risk": "low",
        "share": 1.5,
        "ok": False,
    }
    assert "  at least 3 characters" in shown
    assert "  an answer is required" in shown
    assert "  must be one of low, high" in shown
    assert "  must be at least 1" in shown
    assert "  answer yes or no" in shown


def test_ask_gives_up_after_its_tries() -> None:
    """A field without a valid answer after MAX_TRIES ends the prompt with an error naming it."""
    read, _ = terminal(["x"] * MAX_TRIES)
    with pytest.raises(FormError, match="no valid answer for 'ticket' after 3 tries"):
        ask(FORM, read, lambda _: None)


def test_parse_response_takes_a_json_object_only() -> None:
    """`--response` is a JSON object; anything else is refused saying so."""
    assert parse_response('{"ticket": "CHG-1"}') == {"ticket": "CHG-1"}
    with pytest.raises(FormError, match="not JSON"):
        parse_response("{ticket")
    with pytest.raises(FormError, match="a JSON object of answers"):
        parse_response('["CHG-1"]')


def test_inbox_row_shows_requester_quorum_progress_and_votes() -> None:
    """A line names who started the run, votes to go on of those needed, and who voted what."""
    item = InboxItem(
        workflow_id="wf-1",
        pipeline="p",
        gate="release",
        stage="before",
        review="ship?",
        subject=None,
        digest="sha256:x",
        opened_at=datetime(2026, 1, 1, tzinfo=UTC),
        deadline=None,
        actions=["approve"],
        approvers=["role:ops"],
        requester="olga\x1b]0;pwned",
        quorum=2,
        approvals=1,
        votes=[VoteLine(principal="ann", action="approve")],
        votes_total=3,
        form={"type": "object", "properties": {"t": {"type": "string"}}},
    )
    assert inbox_row(item) == (
        "normal",
        "-",
        "wf-1",
        "olga?]0;pwned",
        "1/2",
        "release (before) — ship? [voted: ann approve and 2 more] [form]",
    )
