"""A run's inbox lines: what the memo tells the API's inbox of each open gate (the gates memo),
each line bounded field by field and the memo bounded in lines and in bytes. Pure functions."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from datetime import datetime

from activities.masking import mask
from workflows.language.definition import PRIORITIES, ApprovalSpec, Definition
from workflows.language.limits import MAX_TEXT_CHARS
from workflows.models import GateSummary, Principal, VoteLine
from workflows.names import MEMO_GATES_MAX
from workflows.rules.bounds import NAME_CHARS, SUMMARY, Bounds, clip, cut, fit
from workflows.rules.gates import gate_spec
from workflows.rules.state import GateRecord, RunData
from workflows.rules.votes import GO_ON, live, shown_as, voter

# Larger subjects are left out of the inbox line (the status has them).
MEMO_SUBJECT_CHARS = 1_024
# Votes a line lists (the latest), and voters it names (who may not vote again: past it, one more
# voter may see the gate listed, and a second vote is refused as ever).
MEMO_VOTES = 10
MEMO_VOTERS = 200
# Bytes of JSON of the lines one memo keeps, half of Temporal's 2 MiB for a memo: lines past it
# are counted like those past MEMO_GATES_MAX. The largest line a definition allows (two hundred
# approvers and as many voters with the longest two-byte names, a review, a subject and a form at
# their bounds) takes about 180 KiB (tests/rules/test_inbox_lines.py), so the first always fits.
MEMO_BYTES = 1024 * 1024


def gate_summary(
    g: GateRecord, spec: ApprovalSpec, requester: Principal | None = None
) -> GateSummary:
    """The inbox line: the subject only when its JSON is small, the latest votes, the form."""
    subject = mask(g.subject)
    fits = len(json.dumps(subject, default=str)) <= MEMO_SUBJECT_CHARS
    votes = live(g)
    return GateSummary(
        gate=g.gate,
        stage=g.stage,
        round=g.round,
        approvers=g.approvers,
        actions=list(spec.actions()),
        voted=[
            cut(p, NAME_CHARS) for p in dict.fromkeys(p for v in votes for p in (v.actor, voter(v)))
        ][:MEMO_VOTERS],
        digest=g.digest,
        review=clip(g.review if g.review is not None else spec.review, MAX_TEXT_CHARS),
        subject=subject if fits else None,
        subject_truncated=not fits,
        opened_at=g.opened_at,
        deadline=g.deadline,
        quorum=spec.quorum,
        priority=g.priority,
        requester=clip(requester.principal, NAME_CHARS) if requester is not None else None,
        votes=[
            VoteLine(principal=cut(shown_as(v.actor, v.on_behalf_of), NAME_CHARS), action=v.action)
            for v in votes[-MEMO_VOTES:]
        ],
        votes_total=len(votes),
        approvals=sum(v.action in GO_ON for v in votes),
        form=spec.form,
    )


def open_summaries(
    state: RunData, d: Definition, requester: Principal | None = None
) -> list[GateSummary]:
    """Every open gate's inbox line, the most urgent first, then the oldest."""
    own = [g for _, g in state.gates() if g.open]
    return [gate_summary(g, spec, requester) for g, spec in specced(d, own)]


def memo_lines(lines: list[GateSummary]) -> list[GateSummary]:
    """The lines the memo keeps: the first MEMO_GATES_MAX, while they fit MEMO_BYTES."""
    return fit([_as_is(line) for line in lines], (SUMMARY,), MEMO_BYTES, MEMO_GATES_MAX)


def _as_is(line: GateSummary) -> Callable[[Bounds], GateSummary]:
    return lambda _: line


def specced(
    d: Definition, gates: list[GateRecord], most: int | None = None
) -> list[tuple[GateRecord, ApprovalSpec]]:
    """Open gates with the spec each follows, the most urgent first, then the oldest (only the
    first `most`)."""
    ranked = heapq.nsmallest(most or len(gates), gates, key=_urgency)
    return [(g, spec) for g in ranked if (spec := gate_spec(d, g)) is not None]


def _urgency(g: GateRecord) -> tuple[int, datetime]:
    return PRIORITIES.index(g.priority), g.opened_at
