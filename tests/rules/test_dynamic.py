"""Dynamic steps on the pure rules: for_each items, repeat loops, checks, plans, rich gates."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.sim import T0, Sim
from tests.rules.sim import facts as sim_facts
from workflows.models import LifecycleInput, Principal
from workflows.rules import lifecycle, summary, view
from workflows.rules.gates import gate_spec, next_alarm, next_due
from workflows.rules.scheduler import CheckPlan, Invoke, Notify, next_wake
from workflows.rules.state import PlanRecord, Result

EACH = """
name: each
input: {type: object, properties: {files: {type: array}}}
steps:
  - id: write
    for_each: "${input.files}"
    max_parallel: 2
    tool: t.x
    with: {name: "${item.name}", n: "${index}"}
    %s
  - {id: after, tool: t.x, needs: [write], with: {all: "${steps.write.output}"}}
"""

FILES = {"files": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}


def _invokes(sim: Sim) -> list[tuple[str, dict[str, object]]]:
    return [(e.step, e.args) for e in sim.effects if isinstance(e, Invoke)]


def test_for_each_runs_each_item_with_its_value_and_index_within_max_parallel() -> None:
    """Items start in order, at most max_parallel at once, each with `item` and `index`; the
    step's output is the items' outputs in order."""
    sim = Sim(EACH % "", FILES)
    sim.advance()
    assert _invokes(sim) == [("write.0", {"name": "a", "n": 0}), ("write.1", {"name": "b", "n": 1})]
    assert [i.id for i in sim.step("write").items or []] == ["write.0", "write.1", "write.2"]
    sim.succeed("write.1", {"v": "B"})
    assert _invokes(sim)[-1] == ("write.2", {"name": "c", "n": 2})
    sim.succeed("write.0", {"v": "A"})
    sim.succeed("write.2", {"v": "C"})
    assert sim.step("write").output == [{"v": "A"}, {"v": "B"}, {"v": "C"}]
    assert _invokes(sim)[-1] == ("after", {"all": [{"v": "A"}, {"v": "B"}, {"v": "C"}]})


def test_for_each_over_an_empty_list_succeeds_with_an_empty_output() -> None:
    """No items: the step succeeds at once with []."""
    sim = Sim(EACH % "", {"files": []})
    sim.advance()
    assert sim.step("write").state.value == "succeeded" and sim.step("write").output == []


def test_for_each_of_something_else_than_a_list_fails_the_step() -> None:
    """for_each resolving to an object fails the step, naming what it got."""
    sim = Sim(EACH % "", {"files": {"a": 1}})
    sim.advance()
    assert sim.step("write").error == "for_each must be a list, got dict"


def test_a_failed_item_fails_the_step_and_the_run_unless_on_error_continue() -> None:
    """With on_error fail one item's failure stops the run; with continue the step succeeds and
    the failed item's output is null."""
    sim = Sim(EACH % "", FILES)
    sim.advance()
    sim.fail("write.0", "disk full")
    assert sim.state.stop is not None
    assert sim.state.stop.message == "item 0 of step 'write' failed: disk full"
    sim = Sim(EACH % "on_error: continue", FILES)
    sim.advance()
    sim.fail("write.0", "disk full")
    sim.succeed("write.1", {"v": 1})
    sim.succeed("write.2", {"v": 2})
    assert sim.step("write").state.value == "succeeded"
    assert sim.step("write").output == [None, {"v": 1}, {"v": 2}]


def test_per_item_gates_have_their_own_ids_and_subjects() -> None:
    """A gate on a for_each step opens one gate per item, `<step>.<index>`, each with its item's
    inputs; deciding one lets only that item run."""
    sim = Sim(
        EACH % 'approval: {approvers: ["role:ops"], review: "write ${item.name}?", priority: high}',
        FILES,
    )
    sim.advance()
    assert [e.gate for e in sim.effects if isinstance(e, Notify)] == [
        "write.0",
        "write.1",
        "write.2",
    ]
    gate = sim.gate("write.1")
    assert (gate.subject, gate.review, gate.priority, gate.item, gate.step) == (
        {"name": "b", "n": 1},
        "write b?",
        "high",
        1,
        "write",
    )
    assert sim.vote("write.1", "approve") is None
    assert _invokes(sim) == [("write.1", {"name": "b", "n": 1})]
    lines = view.open_summaries(sim.state, sim.d)
    assert [(s.gate, s.priority, s.review) for s in lines] == [
        ("write.0", "high", "write a?"),
        ("write.2", "high", "write c?"),
    ]


def test_one_gate_over_the_whole_list_when_per_item_is_false() -> None:
    """per_item: false reviews the list once, before any item runs; it offers no modify."""
    sim = Sim(EACH % 'approval: {approvers: ["role:ops"], per_item: false}', FILES)
    sim.advance()
    assert sim.gate("write").subject == FILES["files"] and _invokes(sim) == []
    refusal = sim.vote("write", "modify", patch={"x": 1})
    assert refusal is not None and refusal.code == "action_not_allowed"
    sim.vote("write", "approve")
    assert [s for s, _ in _invokes(sim)] == ["write.0", "write.1"]


def test_after_gate_over_the_whole_list_reviews_every_output() -> None:
    """per_item: false at an after gate shows the list of outputs once all items are done."""
    sim = Sim(
        EACH % 'approval: {approvers: ["role:ops"], stage: after, per_item: false}',
        {"files": [{"name": "a"}]},
    )
    sim.advance()
    sim.succeed("write.0", {"v": 1})
    assert sim.gate("write").subject == [{"v": 1}] and sim.step("write").state.value == "waiting"
    sim.vote("write", "approve")
    assert sim.step("write").state.value == "succeeded"


def test_each_item_is_compensated_on_its_own() -> None:
    """A failed run undoes every succeeded item, newest first, each with its own item."""
    sim = Sim(EACH % "compensate: {tool: t.undo, with: {name: '${item.name}'}}", FILES)
    sim.advance()
    sim.succeed("write.1")
    sim.succeed("write.0")
    sim.fail("write.2")
    assert [u.id for u, _ in lifecycle.compensations(sim.state, sim.d)] == ["write.0", "write.1"]


REPEAT = """
name: poll
steps:
  - id: job
    tool: t.x
    with: {last: "${previous.output.status}", try: "${iteration}"}
    repeat: {until: "output.status == 'done'", every: 30s, max_iterations: 3}
"""


def test_repeat_polls_until_the_condition_holds_with_a_durable_wait() -> None:
    """Each iteration sees the previous output; between iterations the step sleeps `every`; the
    loop ends when `until` holds, with every iteration recorded."""
    sim = Sim(REPEAT)
    sim.advance()
    assert _invokes(sim) == [("job", {"last": None, "try": 1})]
    sim.succeed("job", {"status": "running"})
    assert sim.step("job").phase == "sleeping" and sim.step("job").next_at == T0 + timedelta(
        seconds=30
    )
    assert _invokes(sim) == [("job", {"last": None, "try": 1})]
    sim.tick(seconds=30)
    assert _invokes(sim)[-1] == ("job", {"last": "running", "try": 2})
    assert [e.iteration for e in sim.effects if isinstance(e, Invoke)] == [0, 1]
    sim.succeed("job", {"status": "done"})
    step = sim.step("job")
    assert step.state.value == "succeeded" and step.output == {"status": "done"}
    assert [(i.n, i.until) for i in step.iterations] == [(1, False), (2, True)]


def test_repeat_gives_up_after_max_iterations() -> None:
    """A loop whose condition never holds fails after max_iterations, saying so."""
    sim = Sim(REPEAT)
    sim.advance()
    for _ in range(3):
        sim.succeed("job", {"status": "running"})
        sim.tick(seconds=30)
    assert sim.step("job").error == "repeat.until did not hold within 3 iterations"


def test_repeat_timeout_ends_the_loop_while_it_sleeps() -> None:
    """The loop's timeout ends it even between iterations; the wait never outlives it."""
    sim = Sim(REPEAT.replace("max_iterations: 3", "timeout: 45s"))
    sim.advance()
    sim.succeed("job", {"status": "running"})
    sim.tick(seconds=30)
    sim.succeed("job", {"status": "running"})
    assert sim.step("job").next_at == T0 + timedelta(seconds=45)
    sim.tick(seconds=15)
    assert sim.step("job").error == "repeat.until did not hold within 45s"


def test_check_fails_a_step_whose_output_breaks_it() -> None:
    """A false check fails the step with its message; a true one lets it succeed."""
    text = """
name: checked
steps:
  - id: a
    tool: t.x
    check: {condition: "output.code == 0", message: "the build did not pass"}
"""
    sim = Sim(text)
    sim.advance()
    sim.succeed("a", {"code": 2})
    assert sim.step("a").error == "check failed: the build did not pass"
    sim = Sim(text)
    sim.advance()
    sim.succeed("a", {"code": 0})
    assert sim.step("a").state.value == "succeeded"


PLAN = """
name: planned
steps:
  - {id: plan, tool: t.x}
  - id: run
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.json}", allowed_tools: [data.echo], max_steps: 5}
    with: {goal: x}
    approval: {approvers: ["role:ops"]}
"""


def test_a_plan_is_checked_then_reviewed_then_run_as_approved() -> None:
    """The plan goes to its check; a valid one opens the gate on exactly it (no modify); once
    approved the child runs the checked plan."""
    sim = Sim(PLAN)
    sim.advance()
    made = {"name": "p", "steps": [{"id": "s", "tool": "data.echo"}]}
    sim.succeed("plan", {"json": made})
    checks = [e for e in sim.effects if isinstance(e, CheckPlan)]
    assert checks == [CheckPlan("run", made, ["data.echo"], 5)]
    pinned = {
        **made,
        "steps": [{"id": "s", "tool": "data.echo", "resolved_tool": "data.echo@1.0.0"}],
    }
    lifecycle.record_plan(sim.state, "run", PlanRecord(definition=pinned, digest="sha256:p"))
    sim.advance()
    assert sim.gate("run").subject == {"plan": pinned, "input": {"goal": "x"}}
    assert sim.vote("run", "modify", patch={"plan": {}}) is not None
    sim.vote("run", "approve")
    assert [(e.step, e.plan, e.args) for e in sim.effects if isinstance(e, Invoke)][-1] == (
        "run",
        pinned,
        {"goal": "x"},
    )


def test_an_invalid_plan_fails_its_step_with_every_error() -> None:
    """A plan the check refused fails the step listing every problem."""
    sim = Sim(PLAN)
    sim.advance()
    sim.succeed("plan", {"json": {"name": "p"}})
    lifecycle.record_plan(sim.state, "run", PlanRecord(errors=["steps: Field required", "x: y"]))
    sim.advance()
    assert sim.step("run").error == "the plan is not valid: steps: Field required; x: y"


def test_priority_by_condition_and_by_reference() -> None:
    """A gate's priority may be chosen by conditions (first that holds) or read from data; an
    unknown word falls back to normal."""
    text = """
name: pri
steps:
  - {id: a, tool: t.x}
  - id: b
    needs: [a]
    tool: t.x
    approval: {approvers: ["role:ops"], priority: %s}
"""
    for priority, output, expected in [
        ('{urgent: "steps.a.output.sev > 3", high: "steps.a.output.sev > 1"}', {"sev": 2}, "high"),
        ('{urgent: "steps.a.output.sev > 3"}', {"sev": 1}, "normal"),
        ('"${steps.a.output.p}"', {"p": "low"}, "low"),
        ('"${steps.a.output.p}"', {"p": "whatever"}, "normal"),
    ]:
        sim = Sim(text % priority)
        sim.advance()
        sim.succeed("a", output)
        assert sim.gate("b").priority == expected, priority


def test_status_shows_items_and_iterations() -> None:
    """The status lists a for_each step's items and a repeat step's iterations."""
    sim = Sim(EACH % "", FILES)
    sim.advance()
    sim.succeed("write.0", {"v": 1})
    facts = sim_facts("wf-1", "run-1", Principal(principal="req"), "manual")
    step = summary.status(sim.state, sim.d, facts).steps[0]
    assert [(i.index, i.state) for i in step.items or []] == [
        (0, "succeeded"),
        (1, "running"),
        (2, "running"),
    ]
    sim = Sim(REPEAT)
    sim.advance()
    sim.succeed("job", {"status": "running"})
    step = summary.status(sim.state, sim.d, facts).steps[0]
    assert [(i.n, i.until) for i in step.iterations or []] == [(1, False)]


def test_stale_results_for_items_are_ignored() -> None:
    """A result for an unknown item or round changes nothing."""
    sim = Sim(EACH % "", FILES)
    sim.advance()
    lifecycle.record_result(sim.state, "write.9", Result(round=0, ok=True))
    lifecycle.record_result(sim.state, "write.0", Result(round=2, ok=True))
    assert sim.state.unit("write.0") is not None and sim.state.unit("write.0").result is None  # type: ignore[union-attr]


def test_a_repeat_step_is_checked_on_what_its_loop_ends_with() -> None:
    """`until` decides when the loop stops, `check` whether it ended well: an iteration the check
    would refuse does not fail the loop, the last one does."""
    text = REPEAT.replace(
        "max_iterations: 3}",
        "max_iterations: 3}\n    check: {condition: \"output.status == 'done'\", message: bad end}",
    ).replace("output.status == 'done'\", every", "output.status != 'running'\", every")
    sim = Sim(text)
    sim.advance()
    sim.succeed("job", {"status": "running"})
    assert sim.step("job").phase == "sleeping"
    sim.tick(seconds=30)
    sim.succeed("job", {"status": "error"})
    step = sim.step("job")
    assert (step.state.value, step.error) == ("failed", "check failed: bad end")
    assert [(i.n, i.until) for i in step.iterations] == [(1, False), (2, True)]
    sim = Sim(text)
    sim.advance()
    sim.succeed("job", {"status": "done"})
    assert sim.step("job").state.value == "succeeded"


def test_sleeping_repeat_step_is_when_the_run_wakes_next() -> None:
    """While a loop sleeps, its next iteration is the run's next wake-up; once it runs again
    nothing is due."""
    sim = Sim(REPEAT)
    sim.advance()
    assert (next_due(sim.state), next_wake(sim.state)) == (None, None)
    sim.succeed("job", {"status": "running"})
    assert (next_due(sim.state), next_wake(sim.state)) == (T0 + timedelta(seconds=30),) * 2
    due = next_alarm(sim.state)
    assert due is not None and due.summary == "step job: next iteration"
    sim.tick(seconds=30)
    assert (next_due(sim.state), next_wake(sim.state)) == (None, None)


def test_earliest_of_several_sleeping_loops_is_the_next_wake() -> None:
    """Two loops asleep with different waits: the run wakes for the sooner one, then the other."""
    sim = Sim(REPEAT + REPEAT.split("steps:\n")[1].replace("job", "slow").replace("30s", "50s"))
    sim.advance()
    sim.succeed("slow", {"status": "running"})
    sim.tick(seconds=10)
    sim.succeed("job", {"status": "running"})
    assert (next_due(sim.state), next_wake(sim.state)) == (T0 + timedelta(seconds=40),) * 2
    sim.tick(seconds=30)
    assert (next_due(sim.state), next_wake(sim.state)) == (T0 + timedelta(seconds=50),) * 2


def test_plan_for_a_step_not_planning_is_ignored() -> None:
    """A plan arriving for a step that is not waiting for one (not started, or already given one)
    changes nothing, and one for an unknown step is dropped."""
    sim = Sim(PLAN)
    sim.advance()
    lifecycle.record_plan(sim.state, "run", PlanRecord(errors=["early"]))
    assert sim.step("run").plan is None and sim.step("run").phase == "pending"
    sim.succeed("plan", {"json": {"name": "p"}})
    lifecycle.record_plan(sim.state, "run", PlanRecord(errors=["first"]))
    lifecycle.record_plan(sim.state, "run", PlanRecord(errors=["second"]))
    lifecycle.record_plan(sim.state, "nope", PlanRecord(errors=["x"]))
    assert sim.step("run").plan == PlanRecord(errors=["first"])


def test_cancel_while_a_loop_sleeps_ends_it_cancelled() -> None:
    """A run cancelled between iterations cancels the sleeping step at once and finishes, with
    nothing left due."""
    sim = Sim(REPEAT)
    sim.advance()
    sim.succeed("job", {"status": "running"})
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="olga", reason="enough"), T0)
    assert sim.advance() == []
    job = sim.step("job")
    assert (job.state.value, job.phase, job.reason, job.next_at) == (
        "cancelled",
        "done",
        "run stopped",
        None,
    )
    assert sim.finished and next_due(sim.state) is None


def test_whole_list_after_gate_offers_no_retry_or_modify() -> None:
    """A gate over a for_each step's outputs cannot retry or patch the list: both are refused."""
    sim = Sim(
        EACH % 'approval: {approvers: ["role:ops"], stage: after, per_item: false}',
        {"files": [{"name": "a"}]},
    )
    sim.advance()
    sim.succeed("write.0", {"v": 1})
    assert gate_spec(sim.d, sim.gate("write")).actions() == ("approve", "reject", "skip", "cancel")
    for action, kw in (("retry", {}), ("modify", {"patch": [2]})):
        refusal = sim.vote("write", action, **kw)
        assert refusal is not None and refusal.code == "action_not_allowed", action
    assert sim.gate("write").open


def test_run_failing_mid_list_ends_waiting_items_and_their_step() -> None:
    """Once the calls out are back after a failure, items never started end skipped and their
    step ends skipped too, each saying the run failed."""
    sim = Sim(EACH % "", FILES)
    sim.advance()
    sim.fail("write.0", "disk full")
    assert sim.step("write.2").phase == "pending"
    sim.succeed("write.1", {"v": 1})
    assert [(u, sim.step(u).state.value, sim.step(u).reason) for u in ("write.2", "write")] == [
        ("write.2", "skipped", "not reached: the run failed"),
        ("write", "skipped", "stopped: the run failed"),
    ]
    assert sim.finished
