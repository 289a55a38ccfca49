"""What a gate, a vote, a child's gate and a step show within the `Bounds` they are shown with:
the latest votes and their totals, clipped votes, subjects and plans left out and said so, the
answer to a decision down the page ladder, the items that moved last and when a unit moved, a
step's iterations and plan errors, and the call gates the Web UI details name."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from tests.rules.agent_sim import RESTART, AgentSim, agent_def
from tests.rules.sim import T0, Sim
from workflows.language.definition import ApprovalSpec
from workflows.models import GateSummary, Vote
from workflows.rules import bounds, lifecycle, view
from workflows.rules.bounds import BRIEF, PAGE, Bounds
from workflows.rules.records import GateRecord
from workflows.rules.state import Iteration, PlanRecord

OPEN = """
name: open
steps:
  - {id: a, tool: t.x, with: {n: 1}, approval: {approvers: ["role:ops"], quorum: 100}}
"""

TIGHT = Bounds(text=5, preview=10, value=20, votes=3, units=1)


def _open() -> tuple[Sim, GateRecord, ApprovalSpec]:
    """Gate `a` open, waiting for a hundred approvals."""
    sim = Sim(OPEN)
    sim.advance()
    spec = sim.d.step("a").approval
    assert spec is not None
    return sim, sim.gate("a"), spec


def _vote(g: GateRecord, actor: str, action: str = "approve", **kw: Any) -> Vote:
    """A vote cast on the gate's current subject by an approver, added to the gate."""
    v = Vote(actor=actor, action=action, at=T0, roles=["ops"], digest=g.digest, **kw)
    g.votes.append(v)
    return v


def test_gate_view_lists_the_latest_votes_and_counts_them_all() -> None:
    """Only the latest `votes` of each kind are listed; the totals count every live vote."""
    _, g, spec = _open()
    for k in range(5):
        _vote(g, f"a{k}")
    _vote(g, "r0", "reject")
    _vote(g, "r1", "cancel")
    shown = view.gate_view(g, spec, TIGHT, with_subject=True)
    assert [v.actor for v in shown.approvals] == ["a2", "a3", "a4"]
    assert [v.actor for v in shown.rejections] == ["r0", "r1"]
    assert (shown.approvals_total, shown.rejections_total) == (5, 2)
    one = view.gate_view(
        g, spec, Bounds(text=9, preview=9, value=9, votes=1, units=1), with_subject=True
    )
    assert ([v.actor for v in one.approvals], [v.actor for v in one.rejections]) == (["a4"], ["r1"])
    brief = view.gate_view(g, spec, BRIEF, with_subject=True)
    assert (brief.approvals, brief.rejections, brief.approvals_total) == ([], [], 5)


def test_vote_view_clips_each_vote_to_its_bounds() -> None:
    """A listed vote's actor and comment are cut to the text bound, its roles to ROLES, its patch
    shown only when small; a patch left out, here or before, is said to be left out."""
    _, g, spec = _open()
    roles = [f"r{k}" for k in range(bounds.ROLES + 2)]
    small = _vote(g, "alexander", comment="looks fine to me", patch={"n": 1})
    small.roles = ["ops", *roles]
    _vote(g, "bob", "modify", patch={"n": "x" * 50})
    _vote(g, "cy", "modify", patch_truncated=True)
    a, b, c = view.gate_view(g, spec, TIGHT, with_subject=False).approvals
    assert (a.actor, a.comment, a.patch, a.patch_truncated) == ("alex…", "look…", {"n": 1}, False)
    assert a.roles == ["ops", *roles][: bounds.ROLES]
    assert (b.actor, b.patch, b.patch_truncated) == ("bob", None, True)
    assert (c.actor, c.patch, c.patch_truncated) == ("cy", None, True)
    whole = view.gate_view(g, spec, PAGE, with_subject=False).approvals[0]
    assert (whole.actor, whole.comment) == ("alexander", "looks fine to me")


def test_gate_view_says_when_it_leaves_a_large_subject_out() -> None:
    """A subject over the value bound is left out and marked cut; one not asked for is left out
    unmarked (it is shown elsewhere); one that fits is shown."""
    _, g, spec = _open()
    g.subject = {"note": "y" * 40}
    big = view.gate_view(g, spec, TIGHT, with_subject=True)
    assert (big.subject, big.subject_truncated) == (None, True)
    hidden = view.gate_view(g, spec, TIGHT, with_subject=False)
    assert (hidden.subject, hidden.subject_truncated) == (None, False)
    g.subject = {"n": 1}
    fits = view.gate_view(g, spec, TIGHT, with_subject=True)
    assert (fits.subject, fits.subject_truncated) == ({"n": 1}, False)


def test_answer_is_the_whole_gate_when_it_fits_a_page() -> None:
    """The answer to a decision is the gate with its subject and its votes as a page shows it."""
    _, g, spec = _open()
    _vote(g, "ann", comment="c" * 3_000)
    got = view.answer(g, spec)
    assert (got.gate, got.subject, got.subject_truncated) == ("a", {"n": 1}, False)
    assert [(v.actor, v.comment) for v in got.approvals] == [("ann", "c" * 3_000)]


def test_answer_steps_down_to_the_summary_form_when_the_page_form_is_too_large() -> None:
    """When a hundred large patches would not fit a page, the answer lists the latest ten votes
    without their patches, and still shows the subject."""
    _, g, spec = _open()
    for k in range(100):
        _vote(g, f"m{k}", "modify", patch={"n": "p" * 20_000})
    got = view.answer(g, spec)
    assert [v.actor for v in got.approvals] == [f"m{k}" for k in range(90, 100)]
    assert all(v.patch is None and v.patch_truncated for v in got.approvals)
    assert (got.subject, got.approvals_total) == ({"n": 1}, 100)


def test_answer_of_a_gate_too_large_for_any_form_is_its_briefest_view() -> None:
    """A gate whose view exceeds a page even in brief is still answered: no subject (marked as
    left out), no votes, its review cut to the brief bound."""
    _, g, spec = _open()
    _vote(g, "ann")
    g.review = "r" * 1_000
    g.digest = "d" * (bounds.PAGE_BYTES + 1)
    for v in g.votes:
        v.digest = g.digest
    got = view.answer(g, spec)
    assert (got.subject, got.approvals, got.approvals_total) == (None, [], 1)
    assert got.subject_truncated and g.subject is not None
    assert got.review == "r" * (BRIEF.text - 1) + "…"


def _child(**kw: Any) -> GateSummary:
    """A child's inbox line for gate `x`."""
    return GateSummary(
        gate="x",
        stage="before",
        round=0,
        approvers=["role:ops"],
        actions=["approve"],
        voted=[],
        digest="sha256:1",
        opened_at=T0,
        **kw,
    )


def test_child_gate_view_in_brief_leaves_the_subject_out_and_says_so() -> None:
    """In brief, a child's gate shows no subject and is marked cut only when it had one; a line
    the child already cut stays marked in full."""
    brief = view.child_gate_view("wf-1--a", _child(subject={"k": 1}), BRIEF)
    assert (brief.subject, brief.subject_truncated) == (None, True)
    none = view.child_gate_view("wf-1--a", _child(), BRIEF)
    assert (none.subject, none.subject_truncated) == (None, False)
    cut = view.child_gate_view("wf-1--a", _child(subject_truncated=True), PAGE)
    assert (cut.subject, cut.subject_truncated) == (None, True)
    whole = view.child_gate_view("wf-1--a", _child(subject={"k": 1}), PAGE)
    assert (whole.subject, whole.subject_truncated) == ({"k": 1}, False)


EACH = """
name: each
input: {type: object, properties: {files: {type: array}}}
steps:
  - {id: w, for_each: "${input.files}", tool: t.x, with: {n: "${item}"}}
"""


def test_latest_keeps_the_units_that_moved_last_in_their_order() -> None:
    """Of twelve items, the status keeps the ten that moved last in item order; among those that
    moved at the same time, the first ones."""
    sim = Sim(EACH, {"files": list(range(12))})
    sim.advance()
    items = sim.step("w").items
    assert items is not None
    for i in items:
        i.started_at, i.ended_at = None, None
    assert [i.index for i in view.latest(items, 10)] == list(range(10))
    items[11].started_at = T0
    items[5].ended_at = T0 + timedelta(minutes=1)
    assert [i.index for i in view.latest(items, 10)] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 11]
    shown = view.step_view(sim.step("w"), sim.d).items
    assert [i.index for i in shown or []] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 11]
    assert [i.index for i in view.latest(items[:3], 3)] == [0, 1, 2]


def test_details_name_each_open_call_gate_of_a_step() -> None:
    """An agent step waiting at two call gates lists each by name with its approvers."""
    sim = AgentSim(agent_def(RESTART), {"service": "api"})
    sim.advance()
    sim.reply(("ops_restart", {"service": "a"}), ("ops_restart", {"service": "b"}))
    sim.check({1: "high", 2: "high"})
    assert view.details(sim.state, sim.d) == (
        "**waiting** · a v1\n"
        "- `triage`: waiting — `triage.call-1` waits for role:ops"
        " — `triage.call-2` waits for role:ops"
    )


AFTER = """
name: after
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"], stage: after}}
"""


def test_moved_is_the_last_of_start_end_and_the_gate() -> None:
    """A unit last moved when it ended, and later when its gate opened and then was decided."""
    sim = Sim(AFTER)
    assert view.moved(sim.step("a")) == view.NEVER
    sim.advance()
    assert view.moved(sim.step("a")) == T0
    sim.now += timedelta(minutes=1)
    step = sim.step("a")
    gateless = dataclasses.replace(step, ended_at=sim.now)
    assert view.moved(gateless) == T0 + timedelta(minutes=1)
    sim.succeed("a")
    sim.now += timedelta(minutes=2)
    assert view.moved(sim.step("a")) == T0 + timedelta(minutes=1)
    sim.gate("a").opened_at = sim.now
    assert view.moved(sim.step("a")) == T0 + timedelta(minutes=3)
    sim.now += timedelta(minutes=4)
    sim.vote("a", "approve")
    assert view.moved(sim.step("a")) == T0 + timedelta(minutes=7)


PLAN = """
name: planned
steps:
  - {id: plan, tool: t.x}
  - id: run
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.json}", allowed_tools: [t.x], max_steps: 5}
"""


def test_step_view_says_when_it_leaves_a_large_plan_out() -> None:
    """A plan over the value bound is left out and marked cut; a step without a plan is not."""
    sim = Sim(PLAN)
    sim.advance()
    made = {"name": "p", "steps": [{"id": "s", "tool": "t.x", "with": {"n": "z" * 40}}]}
    sim.succeed("plan", {"json": made})
    lifecycle.record_plan(sim.state, "run", PlanRecord(definition=made, digest="sha256:p"))
    cut = view.step_view(sim.step("run"), sim.d, TIGHT)
    assert (cut.plan, cut.plan_truncated) == (None, True)
    whole = view.step_view(sim.step("run"), sim.d)
    assert (whole.plan, whole.plan_truncated) == (made, False)
    bare = view.step_view(sim.step("plan"), sim.d, TIGHT)
    assert (bare.plan, bare.plan_truncated) == (None, False)


def test_step_view_counts_every_iteration_of_a_repeat_step() -> None:
    """A repeat step lists its latest iterations and counts them all; another step counts none."""
    sim = Sim(
        "name: poll\nsteps:\n  - {id: job, tool: t.x, repeat: {until: output.done, every: 10s, max_iterations: 5}}\n"
        "  - {id: one, tool: t.x}\n"
    )
    sim.advance()
    sim.step("job").iterations += [Iteration(n=n, ok=True, at=T0) for n in (1, 2, 3)]
    job = view.step_view(sim.step("job"), sim.d, TIGHT)
    assert ([i.n for i in job.iterations or []], job.iterations_total) == ([3], 3)
    one = view.step_view(sim.step("one"), sim.d, TIGHT)
    assert (one.iterations, one.iterations_total) == (None, None)


GATED = """
name: gated
steps:
  - id: a
    tool: t.x
    on_error: continue
    compensate: {tool: t.undo}
    approval: {approvers: ["role:ops"], stage: after, review: "look at it closely"}
  - {id: b, tool: t.x}
"""


def test_step_view_holds_its_gate_output_and_compensation_to_its_bounds() -> None:
    """In a tight view a step's gate review and voters, its output preview and its compensation's
    error are cut to the view's bounds."""
    sim = Sim(GATED)
    sim.advance()
    sim.succeed("a", {"text": "t" * 50})
    sim.vote("a", "approve", actor="annabel")
    lifecycle.compensated(sim.step("a"), "undo failed badly", sim.now)
    a = view.step_view(sim.step("a"), sim.d, TIGHT)
    assert a.gate is not None
    assert (a.gate.review, [v.actor for v in a.gate.approvals]) == ("look…", ["anna…"])
    assert (a.output_preview, a.compensation and a.compensation.error) == (
        '{"text": …',
        "undo…",
    )


def test_step_view_lists_iterations_and_plan_errors_briefly() -> None:
    """A step's iterations are listed in brief (previews cut to the brief bound), and only its
    first `units` plan errors, at least one."""
    sim = Sim(
        "name: poll\nsteps:\n  - id: job\n    tool: t.x\n"
        "    repeat: {until: output.done, every: 10s, max_iterations: 5}\n"
    )
    sim.advance()
    sim.step("job").iterations.append(Iteration(n=1, ok=True, preview="q" * 300, at=T0))
    (it,) = view.step_view(sim.step("job"), sim.d).iterations or []
    assert it.output_preview == "q" * (BRIEF.preview - 1) + "…"
    sim = Sim(PLAN)
    sim.advance()
    sim.succeed("plan", {"json": {"name": "p"}})
    lifecycle.record_plan(sim.state, "run", PlanRecord(errors=["e1", "e2", "e3"]))
    assert view.step_view(sim.step("run"), sim.d).plan_errors == ["e1", "e2", "e3"]
    assert view.step_view(sim.step("run"), sim.d, TIGHT).plan_errors == ["e1"]
    assert view.step_view(sim.step("run"), sim.d, BRIEF).plan_errors == ["e1"]
