"""What the outside sees: run state, who is awaited, the bounded status, audit pages, inbox lines."""

from __future__ import annotations

from tests.rules.sim import T0, Sim
from tests.rules.sim import facts as sim_facts
from workflows.contract import RunState
from workflows.models import AuditEntry, GateSummary, Principal
from workflows.rules import bounds, lifecycle, pages, summary, view
from workflows.rules.state import AuditArchiveRef

TWO_GATES = """
name: two
steps:
  - {id: a, tool: t.x, with: {n: 1}, approval: {approvers: ["role:ops", "user:carol"], quorum: 2, review: "check n"}}
  - {id: b, tool: t.x, with: {password: hunter2}, approval: {approvers: ["role:lead"], stage: before}}
  - {id: c, tool: t.x, needs: [a, b]}
"""

FACTS = sim_facts("wf-1", "run-1", Principal(principal="req"), "manual")


def test_run_state_follows_the_state() -> None:
    """running, waiting while a gate (own or a child's) is open, paused, then the close."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    assert view.run_state(sim.state) == RunState.RUNNING
    sim.state.children["c"] = lifecycle.ChildGates(step="a", workflow_id="c", gates=[_summary()])
    assert view.run_state(sim.state) == RunState.WAITING
    sim.state.paused = True
    assert view.run_state(sim.state) == RunState.PAUSED
    sim.state.closed = RunState.FAILED
    assert view.run_state(sim.state) == RunState.FAILED
    sim = Sim(TWO_GATES)
    sim.advance()
    assert view.run_state(sim.state) == RunState.WAITING


def _summary() -> GateSummary:
    return GateSummary(
        gate="x",
        stage="before",
        round=0,
        approvers=["role:ops"],
        actions=["approve"],
        voted=[],
        digest="sha256:1",
        opened_at=T0,
        quorum=2,
    )


def test_awaiting_is_exactly_who_may_decide_open_gates() -> None:
    """Principals of every open gate, once each, sorted; none once they are decided."""
    sim = Sim(TWO_GATES)
    sim.advance()
    assert view.awaiting(sim.state) == ["role:lead", "role:ops", "user:carol"]
    sim.vote("b", "approve", actor="lee", roles=["lead"])
    assert view.awaiting(sim.state) == ["role:ops", "user:carol"]


def test_status_shows_each_subject_once_and_masks_secrets() -> None:
    """An open gate's subject appears under open_gates only; sensitive keys are masked."""
    sim = Sim(TWO_GATES)
    sim.advance()
    sim.vote("a", "approve")
    status = summary.status(sim.state, sim.d, FACTS)
    assert [g.gate for g in status.open_gates] == ["a", "b"]
    assert status.open_gates[1].subject == {"password": "***"}
    assert all(s.gate is None or s.gate.subject is None for s in status.steps)
    a = status.open_gates[0]
    assert (a.quorum, [v.actor for v in a.approvals], a.review, a.state) == (
        2,
        ["alice"],
        "check n",
        "open",
    )
    assert (status.state, status.progress.done, status.progress.total, status.kind) == (
        "waiting",
        0,
        3,
        "pipeline",
    )
    assert status.requester == Principal(principal="req") and status.run_id == "run-1"


def test_status_shows_a_decided_gate_with_its_subject_and_votes() -> None:
    """A decided gate keeps its subject, outcome, deciders and lapsed votes in the step's view."""
    sim = Sim(TWO_GATES)
    sim.advance()
    sim.vote("a", "approve")
    sim.vote("a", "modify", actor="bob", patch={"n": 2})
    sim.vote("a", "approve", actor="carol", roles=[])
    step = summary.status(sim.state, sim.d, FACTS).steps[0]
    assert step.gate is not None
    assert (step.gate.state, step.gate.subject, step.gate.lapsed, step.gate.modified) == (
        "modified",
        {"n": 2},
        1,
        True,
    )
    assert step.gate.decided_by == "carol" and [v.actor for v in step.gate.approvals] == [
        "bob",
        "carol",
    ]


def test_status_carries_the_latest_audit_entries_and_the_count() -> None:
    """The status holds at most the last STATUS_AUDIT entries; the total counts them all."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    for i in range(bounds.STATUS_AUDIT + 5):
        sim.state.record(AuditEntry(at=T0, kind="reminder", reason=str(i)))
    status = summary.status(sim.state, sim.d, FACTS)
    assert (
        len(status.audit) == bounds.STATUS_AUDIT and status.audit_total == bounds.STATUS_AUDIT + 5
    )
    assert status.audit[-1].seq == bounds.STATUS_AUDIT + 5


def test_child_gates_appear_with_the_child_workflow_id() -> None:
    """A waiting child's gates are listed on the parent, naming the child run."""
    sim = Sim("name: one\nsteps: [{id: a, pipeline: child}]")
    sim.advance()
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [_summary()])
    status = summary.status(sim.state, sim.d, FACTS)
    assert [(g.gate, g.workflow_id, g.quorum) for g in status.open_gates] == [("x", "wf-1--a", 2)]
    assert "child `wf-1--a` gate `x`" in view.details(sim.state, sim.d)


def test_audit_pages_walk_every_entry_and_name_archives() -> None:
    """Pages follow seq from `after`; archived chunks newer than `after` are named."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    for i in range(7):
        sim.state.record(AuditEntry(at=T0, kind="reminder", reason=str(i)))
    page = pages.audit_page(sim.state, 0, 3)
    assert [e.seq for e in page.entries] == [1, 2, 3] and page.next_after == 3 and page.total == 7
    page = pages.audit_page(sim.state, 6, 3)
    assert [e.seq for e in page.entries] == [7] and page.next_after is None
    sim.state.archives = [AuditArchiveRef(first_seq=1, last_seq=3, path="p", sha256="h")]
    del sim.state.audit[:3]
    assert pages.audit_page(sim.state, 0, 10).archived == sim.state.archives
    assert pages.audit_page(sim.state, 3, 10).archived == []
    assert [e.seq for e in pages.audit_page(sim.state, 0, 10).entries] == [4, 5, 6, 7]


def test_inbox_line_leaves_out_large_subjects() -> None:
    """The memo line carries a subject only when its JSON is small; who voted is listed."""
    sim = Sim(TWO_GATES.replace("with: {n: 1}", "with: {n: '" + "x" * 2000 + "'}"))
    sim.advance()
    sim.vote("a", "approve")
    a, b = view.open_summaries(sim.state, sim.d)
    assert a.subject is None and a.subject_truncated and a.voted == ["alice"] and a.quorum == 2
    assert b.subject == {"password": "***"} and not b.subject_truncated


def test_previews_are_bounded_and_masked() -> None:
    """Output previews are cut with an ellipsis and never show a sensitive key's value."""
    text = view.preview({"token": "abc", "body": "y" * 5000}, 100)
    assert len(text) == 100 and text.endswith("…") and "abc" not in text
    assert view.preview({"a": 1}) == '{"a": 1}'


def test_notification_names_gate_stage_approvers_and_deadline() -> None:
    """The message tells what waits, for whom and until when, and carries no link (the notify
    tool adds each recipient's own)."""
    sim = Sim(TWO_GATES)
    sim.advance()
    spec = sim.d.step("a").approval
    assert spec is not None
    text = view.notification(sim.gate("a"), spec, sim.d, "wf-1", "opened")
    assert text == (
        "[opened] two v1, run wf-1: gate 'a' waits at its before stage for role:ops, user:carol. "
        "Review: check n. Deadline: none."
    )


def test_each_step_names_the_pipeline_it_runs_and_only_that() -> None:
    """A tool step names no pipeline, a catalog child its name, a plan step `(plan)`."""
    sim = Sim(
        """
name: kinds
steps:
  - {id: tool, tool: t.x}
  - {id: child, pipeline: child}
  - id: plan
    pipeline: {definition: "${input.plan}", allowed_tools: [t.x], max_steps: 2}
"""
    )
    steps = summary.status(sim.state, sim.d, FACTS).steps
    assert [(s.id, s.tool, s.pipeline) for s in steps] == [
        ("tool", "t.x", None),
        ("child", None, "child"),
        ("plan", None, "(plan)"),
    ]
