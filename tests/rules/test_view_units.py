"""The status view of dynamic steps: each for_each item with its gate, each repeat iteration,
and a plan made at run time, every field pinned."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.sim import T0, Sim
from tests.rules.sim import facts as sim_facts
from workflows.models import GateView, ItemView, IterationView, Principal
from workflows.rules import lifecycle, pages, summary, view
from workflows.rules.gates import Notify
from workflows.rules.pages import PageInput
from workflows.rules.state import Iteration, PlanRecord, Result

FACTS = sim_facts("wf-1", "run-1", Principal(principal="req"), "manual")

ITEMS = """
name: items
input: {type: object, properties: {files: {type: array}}}
steps:
  - id: write
    for_each: "${input.files}"
    on_error: continue
    tool: t.x
    with: {name: "${item.name}"}
    approval: {approvers: ["role:ops"], review: "write ${item.name}?", priority: high}
"""


def _items() -> Sim:
    """Item 0 approved then succeeded (its result previewed), item 1 waiting, item 2 rejected."""
    sim = Sim(ITEMS, {"files": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    sim.advance()
    sim.tick(minutes=1)
    sim.vote("write.0", "approve")
    sim.tick(minutes=1)
    lifecycle.record_result(
        sim.state,
        "write.0",
        Result(round=0, ok=True, output={"v": "A"}, preview="(stored) A", attempts=2),
    )
    sim.advance()
    sim.vote("write.2", "reject")
    return sim


def _item_views(sim: Sim) -> list[ItemView]:
    """The step's items as its items page shows them, each whole."""
    step = summary.status(sim.state, sim.d, FACTS).steps[0]
    assert step.id == "write" and step.iterations is None
    return pages.page(sim.state, sim.d, PageInput(of="items", step="write")).items


def test_status_lists_a_steps_items_brief_with_their_counts() -> None:
    """The status shows a for_each step's items without their gates (open ones are under
    open_gates, every one on the items page), with the count in each state."""
    step = summary.status(_items().state, _items().d, FACTS).steps[0]
    assert [(i.index, i.state, i.gate) for i in step.items or []] == [
        (0, "succeeded", None),
        (1, "waiting", None),
        (2, "failed", None),
    ]
    assert step.items_total == 3
    assert step.item_counts == {"succeeded": 1, "waiting": 1, "failed": 1}


def test_item_view_shows_every_field_of_each_item() -> None:
    """Each item shows its index, state, attempts, times, error, reason and stored preview."""
    views = _item_views(_items())
    assert [v.model_dump(exclude={"gate"}) for v in views] == [
        {
            "index": 0,
            "state": "succeeded",
            "attempts": 2,
            "started_at": T0,
            "ended_at": T0 + timedelta(minutes=2),
            "error": None,
            "reason": None,
            "output_preview": "(stored) A",
        },
        {
            "index": 1,
            "state": "waiting",
            "attempts": 0,
            "started_at": T0,
            "ended_at": None,
            "error": None,
            "reason": None,
            "output_preview": None,
        },
        {
            "index": 2,
            "state": "failed",
            "attempts": 0,
            "started_at": T0,
            "ended_at": T0 + timedelta(minutes=2),
            "error": "rejected at before gate by alice",
            "reason": None,
            "output_preview": None,
        },
    ]


def test_item_view_previews_an_output_that_came_without_a_preview() -> None:
    """An item whose result carried no preview shows its output's JSON instead."""
    sim = _items()
    sim.vote("write.1", "approve")
    sim.succeed("write.1", {"v": "B"})
    assert _item_views(sim)[1].output_preview == '{"v": "B"}'


def test_item_gate_view_names_its_step_item_priority_and_own_review() -> None:
    """An item's gate names the step and the item, its priority and its review resolved for that
    item; a decided gate shows its subject, an open one leaves it to open_gates."""
    views = _item_views(_items())
    gates = [v.gate for v in views]
    assert all(isinstance(g, GateView) for g in gates)
    assert [
        (g.gate, g.step, g.item, g.priority, g.review, g.state, g.subject)
        for g in gates
        if g is not None
    ] == [
        ("write.0", "write", 0, "high", "write a?", "approved", {"name": "a"}),
        ("write.1", "write", 1, "high", "write b?", "open", None),
        ("write.2", "write", 2, "high", "write c?", "rejected", {"name": "c"}),
    ]


def test_gate_without_a_review_of_its_own_shows_the_spec_review() -> None:
    """A gate recorded without a resolved review (an older state) shows the definition's text in
    its view and its inbox line."""
    sim = _items()
    gate = sim.gate("write.1")
    gate.review = None
    spec = sim.d.step("write").approval
    assert spec is not None
    assert view.gate_view(gate, spec, with_subject=True).review == "write ${item.name}?"
    assert view.gate_summary(gate, spec).review == "write ${item.name}?"


REPEAT = """
name: poll
steps:
  - id: job
    tool: t.x
    repeat: {until: "output.done", every: 10s, max_iterations: 5}
"""


def test_iteration_view_shows_every_field_of_each_iteration() -> None:
    """Each iteration shows its number, outcome, whether `until` held, its preview, its error and
    when it ended."""
    sim = Sim(REPEAT)
    sim.advance()
    lifecycle.record_result(
        sim.state, "job", Result(round=0, ok=True, output={"done": False}, preview="(stored) 1")
    )
    sim.advance()
    sim.step("job").iterations.append(Iteration(n=2, ok=False, error="timed out", at=T0))
    step = summary.status(sim.state, sim.d, FACTS).steps[0]
    assert step.iterations == [
        IterationView(n=1, ok=True, until=False, output_preview="(stored) 1", at=T0),
        IterationView(n=2, ok=False, until=False, error="timed out", at=T0),
    ]
    assert step.items is None


PLAN = """
name: planned
steps:
  - {id: plan, tool: t.x}
  - id: run
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.json}", allowed_tools: [data.echo], max_steps: 5}
"""


def test_step_view_shows_a_checked_plan_masked() -> None:
    """A plan's view is its checked definition with secrets masked, and no errors listed."""
    sim = Sim(PLAN)
    sim.advance()
    made = {"name": "p", "steps": [{"id": "s", "tool": "data.echo", "with": {"token": "abc"}}]}
    sim.succeed("plan", {"json": made})
    lifecycle.record_plan(sim.state, "run", PlanRecord(definition=made, digest="sha256:p"))
    step = summary.status(sim.state, sim.d, FACTS).steps[1]
    assert (step.pipeline, step.plan, step.plan_errors) == (
        "(plan)",
        {"name": "p", "steps": [{"id": "s", "tool": "data.echo", "with": {"token": "***"}}]},
        [],
    )


def test_step_view_lists_a_refused_plans_errors() -> None:
    """A plan the check refused shows every error and no definition; a step without a plan shows
    neither."""
    sim = Sim(PLAN)
    sim.advance()
    sim.succeed("plan", {"json": {"name": "p"}})
    lifecycle.record_plan(sim.state, "run", PlanRecord(errors=["steps: Field required"]))
    steps = summary.status(sim.state, sim.d, FACTS).steps
    assert (steps[1].plan, steps[1].plan_errors) == (None, ["steps: Field required"])
    assert (steps[0].plan, steps[0].plan_errors) == (None, None)


def test_item_view_shows_why_an_item_was_skipped() -> None:
    """An item skipped at its gate shows the reason, who skipped it, in its view."""
    sim = _items()
    sim.vote("write.1", "skip", actor="bob")
    view_1 = _item_views(sim)[1]
    assert (view_1.state, view_1.reason) == ("skipped", "skipped at before gate by bob")


def test_item_gate_notification_names_its_item_and_shows_its_review() -> None:
    """An item gate's notification names the gate `<step>.<index>` and its review resolved for
    that item, so approvers can tell one item from another."""
    sim = Sim(ITEMS, {"files": [{"name": "a"}, {"name": "b"}]})
    effects = sim.advance()
    assert [(n.step, n.gate, n.event) for n in effects if isinstance(n, Notify)] == [
        ("write.0", "write.0", "opened"),
        ("write.1", "write.1", "opened"),
    ]
    spec = sim.d.step("write").approval
    assert spec is not None
    text = view.notification(sim.gate("write.1"), spec, sim.d, "wf-1", "opened")
    assert text == (
        "[opened] items v1, run wf-1: gate 'write.1' waits at its before stage for role:ops. "
        "Review: write b?. Deadline: none."
    )
