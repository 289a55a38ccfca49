"""The gates memo stays bounded: the largest inbox line a definition allows, and a memo of many
such lines, whatever a run holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.rules.sim import T0
from workflows.language.approval import ApprovalSpec
from workflows.language.forms import form_issues
from workflows.language.limits import (
    MAX_APPROVERS,
    MAX_FORM_BYTES,
    MAX_NAME_CHARS,
    MAX_QUORUM,
    MAX_TEXT_CHARS,
)
from workflows.models import GateSummary, Principal, Vote
from workflows.names import MEMO_GATES_MAX
from workflows.rules import inbox
from workflows.rules.bounds import size
from workflows.rules.state import GateRecord


def name(prefix: str, i: int) -> str:
    """A principal's name of exactly MAX_NAME_CHARS characters, two bytes each past the prefix."""
    return (f"{prefix}{i:03d}" + "é" * MAX_NAME_CHARS)[:MAX_NAME_CHARS]


def _largest_form() -> dict[str, Any]:
    """A form as near MAX_FORM_BYTES as validation lets through."""
    props: dict[str, Any] = {}
    for i in range(32):
        props[f"f{i}"] = {"type": "string", "description": "d" * 200}
        form = {"type": "object", "properties": props}
        if form_issues(form):
            del props[f"f{i}"]
            break
    return {"type": "object", "properties": props}


def _largest_line() -> GateSummary:
    users = [name("user:", i) for i in range(MAX_APPROVERS)]
    spec = ApprovalSpec(
        approvers=users,
        escalate_to=[name("role:", i) for i in range(MAX_APPROVERS)],
        timeout="1h",
        on_timeout="escalate",
        review="é" * MAX_TEXT_CHARS,
        quorum=MAX_QUORUM,
        form=_largest_form(),
    )
    gate = GateRecord(
        gate="g" * 120,
        step="g",
        stage="before",
        round=0,
        subject={"x": "y" * 1_000},
        digest="d" * 71,
        opened_at=T0,
        deadline=T0 + timedelta(hours=1),
        approvers=[*spec.approvers, *spec.escalate_to],
        review="é" * 100_000,
        votes=[
            Vote(
                actor=name("", i),
                action="approve" if i % 2 else "reject",
                at=T0,
                digest="d" * 71,
                roles=[name("role:", 0).removeprefix("role:")],
            )
            for i in range(2 * MAX_QUORUM + 50)
        ],
    )
    return inbox.gate_summary(gate, spec, Principal(principal="r" * 5_000))


def test_the_largest_inbox_line_is_bounded() -> None:
    """Each field of a line has its bound (voters, votes, review, requester, subject, form), so the
    largest line a definition allows stays under 1/4 of the memo's byte budget."""
    line = _largest_line()
    assert len(line.voted) == inbox.MEMO_VOTERS
    assert len(line.votes) == inbox.MEMO_VOTES and line.votes_total == 2 * MAX_QUORUM + 50
    assert line.review is not None and len(line.review) == MAX_TEXT_CHARS
    assert line.requester is not None and len(line.requester) == MAX_NAME_CHARS
    assert line.subject is not None and size(line.subject) <= inbox.MEMO_SUBJECT_CHARS
    assert line.form is not None and size(line.form) <= MAX_FORM_BYTES
    assert size(line) < inbox.MEMO_BYTES // 4, size(line)


def test_memo_keeps_lines_within_its_byte_budget() -> None:
    """A memo of the largest lines keeps those that fit MEMO_BYTES (the rest are counted as
    more); small lines are kept up to MEMO_GATES_MAX."""
    big = _largest_line()
    kept = inbox.memo_lines([big] * MEMO_GATES_MAX)
    assert 0 < len(kept) < MEMO_GATES_MAX
    assert size(kept) <= inbox.MEMO_BYTES < size([big] * (len(kept) + 1))
    small = big.model_copy(
        update={"approvers": ["role:ops"], "voted": [], "votes": [], "form": None, "review": None}
    )
    assert len(inbox.memo_lines([small] * (MEMO_GATES_MAX + 5))) == MEMO_GATES_MAX
