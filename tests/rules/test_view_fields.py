"""Every field the outside reads: gate, step and child views, the inbox line, progress, previews,
notifications and the Web UI details, each pinned whole."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from tests.rules.sim import T0, Sim
from tests.rules.sim import facts as sim_facts
from workflows.models import CompensationView, GateSummary, Principal, Vote, VoteLine
from workflows.rules import lifecycle, pages, summary, view, votes
from workflows.rules.state import Result

FACTS = sim_facts("wf-1", "run-1", Principal(principal="req"), "manual")


def fields(model: BaseModel, expected: dict[str, Any]) -> dict[str, Any]:
    """The model's fields named in `expected` (fields added later are not this test's subject)."""
    return model.model_dump(include=set(expected))


REVIEWED = """
name: rev
steps:
  - id: a
    tool: t.x
    with: {amount: 10}
    approval:
      approvers: ["role:ops"]
      quorum: 3
      rejections_to_reject: 2
      timeout: 1h
      on_timeout: escalate
      escalate_to: ["role:lead"]
      escalation_timeout: 2h
      remind_after: 10m
      review: "check the amount"
"""


def reviewed() -> Sim:
    """Gate `a` reminded twice, escalated, one rejection, then approved by three."""
    sim = Sim(REVIEWED)
    sim.advance()
    sim.tick(minutes=10)
    sim.vote("a", "reject", actor="rex")
    sim.tick(minutes=50)
    for actor in ("ann", "ben", "lee"):
        sim.vote("a", "approve", actor=actor, roles=["lead"])
    return sim


def test_gate_view_shows_every_field_of_a_decided_gate() -> None:
    """A decided gate shows its state, votes split into approvals and rejections, clock, and the
    last decider."""
    sim = reviewed()
    spec = sim.d.step("a").approval
    assert spec is not None
    g = view.gate_view(sim.gate("a"), spec, with_subject=True)
    expected = {
        "gate": "a",
        "workflow_id": None,
        "stage": "before",
        "state": "approved",
        "round": 0,
        "approvers": ["role:ops", "role:lead"],
        "escalated": True,
        "quorum": 3,
        "actions": ["approve", "reject", "modify", "skip", "cancel"],
        "digest": sim.gate("a").digest,
        "review": "check the amount",
        "subject": {"amount": 10},
        "modified": False,
        "lapsed": 0,
        "reminders": 2,
        "opened_at": T0,
        "deadline": T0 + timedelta(hours=3),
        "decided_at": T0 + timedelta(hours=1),
        "outcome": "approve",
        "decided_by": "lee",
    }
    assert fields(g, expected) == expected
    assert [v.actor for v in g.approvals] == ["ann", "ben", "lee"]
    assert [v.actor for v in g.rejections] == ["rex"]


def test_gate_view_hides_the_subject_when_asked() -> None:
    """The subject is left out of a view that shows it elsewhere."""
    sim = reviewed()
    spec = sim.d.step("a").approval
    assert spec is not None
    assert view.gate_view(sim.gate("a"), spec, with_subject=False).subject is None


def test_gate_summary_is_the_whole_inbox_line() -> None:
    """The inbox line carries the gate's review text, deadline, voters, who voted what, quorum
    progress and the run's requester."""
    sim = Sim(REVIEWED)
    sim.advance()
    sim.vote("a", "approve", actor="ann")
    sim.vote("a", "reject", actor="rex")
    sim.vote("a", "approve", actor="ben")
    (line,) = view.open_summaries(sim.state, sim.d, Principal(principal="rita"))
    assert line == GateSummary(
        gate="a",
        stage="before",
        round=0,
        approvers=["role:ops"],
        actions=["approve", "reject", "modify", "skip", "cancel"],
        voted=["ann", "rex", "ben"],
        digest=sim.gate("a").digest,
        review="check the amount",
        subject={"amount": 10},
        subject_truncated=False,
        opened_at=T0,
        deadline=T0 + timedelta(hours=1),
        quorum=3,
        requester="rita",
        votes=[
            VoteLine(principal="ann", action="approve"),
            VoteLine(principal="rex", action="reject"),
            VoteLine(principal="ben", action="approve"),
        ],
        votes_total=3,
        approvals=2,
    )


def test_gate_summary_keeps_a_subject_of_exactly_the_limit() -> None:
    """A subject whose JSON is exactly MEMO_SUBJECT_CHARS long is still listed."""
    text = "x" * (view.MEMO_SUBJECT_CHARS - 2)  # the quotes make up the rest
    sim = Sim(REVIEWED.replace("with: {amount: 10}", "with: {}"))
    sim.advance()
    sim.gate("a").subject = text
    (line,) = view.open_summaries(sim.state, sim.d)
    assert line.subject == text and not line.subject_truncated
    sim.gate("a").subject = text + "x"
    (line,) = view.open_summaries(sim.state, sim.d)
    assert line.subject is None and line.subject_truncated


def test_child_gate_view_copies_the_child_summary() -> None:
    """A child's gate shows on the parent with everything the child reported."""
    sim = Sim("name: p\nsteps: [{id: a, pipeline: child}]")
    sim.advance()
    line = GateSummary(
        gate="x",
        stage="after",
        round=2,
        approvers=["user:carol"],
        actions=["approve", "retry"],
        voted=["bob"],
        digest="sha256:1",
        review="look",
        subject={"k": 1},
        opened_at=T0,
        deadline=T0 + timedelta(hours=1),
        quorum=2,
        priority="high",
    )
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [line])
    (g,) = summary.status(sim.state, sim.d, FACTS).open_gates
    expected = {
        "gate": "x",
        "workflow_id": "wf-1--a",
        "stage": "after",
        "state": "open",
        "round": 2,
        "approvers": ["user:carol"],
        "escalated": False,
        "quorum": 2,
        "approvals": [],
        "rejections": [],
        "actions": ["approve", "retry"],
        "digest": "sha256:1",
        "review": "look",
        "subject": {"k": 1},
        "modified": False,
        "lapsed": 0,
        "reminders": 0,
        "opened_at": T0,
        "deadline": T0 + timedelta(hours=1),
        "decided_at": None,
        "outcome": None,
        "decided_by": None,
        "priority": "high",
    }
    assert fields(g, expected) == expected


STEPS = """
name: steps
steps:
  - {id: a, tool: t.x, resolved_tool: "t.x@3", on_error: continue, compensate: {tool: t.undo}}
  - {id: b, tool: t.x}
  - {id: c, pipeline: child, needs: [a]}
  - {id: d, tool: t.x, approval: {stage: after, approvers: ["role:ops"]}}
"""


def test_step_view_shows_every_field_of_a_finished_step() -> None:
    """A step shows its pinned tool, attempts, times, duration, the tool's preview, its artifact
    and its compensation."""
    sim = Sim(STEPS)
    sim.advance()
    sim.now += timedelta(seconds=1.5)
    artifact = {"path": "p", "sha256": "h"}
    lifecycle.record_result(
        sim.state,
        "a",
        Result(round=0, ok=True, output={"n": 1}, preview="{…}", artifact=artifact, attempts=2),
    )
    sim.advance()
    lifecycle.compensated(sim.step("a"), "undo failed", sim.now)
    a = view.step_view(sim.step("a"), sim.d)
    expected = {
        "id": "a",
        "tool": "t.x@3",
        "state": "succeeded",
        "attempts": 2,
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=1.5),
        "duration_ms": 1500,
        "error": None,
        "reason": None,
        "output_preview": "{…}",
        "artifact": artifact,
        "gate": None,
        "compensation": CompensationView(
            state="failed", error="undo failed", at=sim.now
        ).model_dump(),
    }
    assert fields(a, expected) == expected


def test_step_view_names_a_pipeline_only_for_a_pipeline_step() -> None:
    """A tool step shows no pipeline; a child pipeline step shows the pipeline's name."""
    sim = Sim(STEPS)
    assert view.step_view(sim.step("a"), sim.d).pipeline is None
    assert view.step_view(sim.step("b"), sim.d).pipeline is None
    assert view.step_view(sim.step("c"), sim.d).pipeline == "child"


def test_step_view_previews_an_output_without_one_and_shows_failures() -> None:
    """An output kept without a preview is previewed, masked; a failed step shows its error, a
    skipped one its reason, a child pipeline its name, a step that has not started no times."""
    sim = Sim(STEPS)
    sim.advance()
    sim.succeed("b", {"token": "s3cret", "n": 2})
    b = view.step_view(sim.step("b"), sim.d)
    assert (b.output_preview, b.tool, b.duration_ms) == ('{"token": "***", "n": 2}', "t.x", 0)
    sim.fail("a", "boom")
    a, c = view.step_view(sim.step("a"), sim.d), view.step_view(sim.step("c"), sim.d)
    assert (a.error, a.output_preview, a.state) == ("boom", None, "failed")
    assert (c.pipeline, c.tool, c.reason, c.started_at, c.duration_ms) == (
        "child",
        None,
        "needs 'a' (failed)",
        None,
        None,
    )


def test_step_view_of_a_gated_step_before_its_gate_opens() -> None:
    """A step that declares a gate shows none until it opens."""
    sim = Sim(STEPS)
    sim.advance()
    assert view.step_view(sim.step("d"), sim.d).gate is None


def test_status_counts_progress_and_shows_output_error_and_generation() -> None:
    """Progress is done over total as a percentage to one decimal; the run's output is masked."""
    sim = Sim(STEPS)
    sim.advance()
    sim.succeed("b")
    sim.state.output = {"password": "p", "ok": True}
    sim.state.error = "it broke"
    sim.state.generation = 4
    status = summary.status(sim.state, sim.d, FACTS)
    assert status.progress.model_dump() == {"done": 1, "total": 4, "percent": 25.0}
    assert (status.output, status.error, status.continued) == (
        {"password": "***", "ok": True},
        "it broke",
        4,
    )
    sim.succeed("a")
    assert summary.status(sim.state, sim.d, FACTS).progress.percent == 50.0
    sim = Sim(
        "name: t\nsteps: [{id: a, tool: t.x}, {id: b, tool: t.x}, {id: c, tool: t.x, if: 'false'}]"
    )
    sim.advance()
    assert summary.status(sim.state, sim.d, FACTS).progress.percent == 33.3


def test_preview_cuts_only_past_the_limit_and_writes_any_value() -> None:
    """A text of exactly the limit is whole; dates become text; non-ASCII stays readable."""
    assert view.preview("abcdefgh", 10) == '"abcdefgh"'
    assert view.preview("abcdefghi", 10) == '"abcdefgh…'
    assert (
        view.preview({"at": T0, "name": "Zoë"})
        == '{"at": "2026-01-01 00:00:00+00:00", "name": "Zoë"}'
    )


def test_notification_without_review_previews_the_subject() -> None:
    """Without a review text the message shows the subject, cut at 300 characters, and ends at
    the deadline."""
    sim = Sim(
        "name: n\nsteps: [{id: a, tool: t.x, with: {note: '"
        + "y" * 400
        + "'}, approval: {approvers: ['role:ops'], timeout: 1h}}]"
    )
    sim.advance()
    spec = sim.d.step("a").approval
    assert spec is not None
    text = view.notification(sim.gate("a"), spec, sim.d, "wf-1", "reminder")
    shown = view.preview({"note": "y" * 400}, 300)
    assert len(shown) == 300
    assert text == (
        "[reminder] n v1, run wf-1: gate 'a' waits at its before stage for role:ops. "
        f"Review: {shown}. Deadline: 2026-01-01T01:00:00+00:00."
    )


def test_details_lists_each_step_and_who_is_awaited() -> None:
    """The Web UI details name the run state, each step, and who each open gate waits for."""
    sim = Sim(
        """
name: d
version: 3
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops", "user:carol"]}}
  - {id: b, pipeline: child}
"""
    )
    sim.advance()
    line = GateSummary(
        gate="x",
        stage="before",
        round=0,
        approvers=["role:lead", "user:dan"],
        actions=["approve"],
        voted=[],
        digest="sha256:1",
        opened_at=T0,
    )
    lifecycle.child_gates(sim.state, "b", "wf-1--b", [line])
    assert view.details(sim.state, sim.d) == (
        "**waiting** · d v3\n"
        "- `a`: waiting — waiting for role:ops, user:carol\n"
        "- `b`: running\n"
        "- child `wf-1--b` gate `x`: waiting for role:lead, user:dan"
    )


def test_audit_page_past_the_end_is_empty() -> None:
    """Asking for entries after the last one returns none and no next page."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    lifecycle.pause(sim.state, None, T0)
    page = pages.audit_page(sim.state, 1, 10)
    assert (page.entries, page.total, page.next_after) == ([], 1, None)


def test_notification_of_a_decided_gate_says_how_and_by_whom() -> None:
    """The "decided" message names the gate's stage, its outcome and who decided it (a delegate
    as `bob for alice`), and no longer what it waits for."""
    sim = Sim(REVIEWED)
    sim.advance()
    spec = sim.d.step("a").approval
    assert spec is not None
    gate = sim.gate("a")
    gate.votes.append(Vote(actor="bob", action="approve", at=T0, on_behalf_of="alice"))
    votes.close(gate, "approve", ["bob"], T0, None)
    text = view.notification(gate, spec, sim.d, "wf-1", "decided")
    assert text.endswith("gate 'a' at its before stage: approved by bob for alice.")
    assert "waits" not in text and "Deadline" not in text
