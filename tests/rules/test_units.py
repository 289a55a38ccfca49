"""One unit's phase machine (workflows/rules/units.py): loops and their limits, plans without a gate,
a for_each step gathered after a failure, and the digest a plan is recorded with."""

from __future__ import annotations

from datetime import timedelta

from activities.models import ARTIFACT_MARKER
from tests.rules.sim import T0, Sim
from workflows.language.limits import MAX_ITEMS, MAX_ITERATIONS, REPEAT_FLOOR
from workflows.rules import lifecycle
from workflows.rules.gates import next_due
from workflows.rules.scheduler import Invoke
from workflows.rules.state import PlanRecord, Result
from workflows.rules.units import plan_digest

LOOP = """
name: loop
steps:
  - id: job
    tool: t.x
    with: {try: "${iteration}"}
    repeat: {until: "%s", %s}
"""


def _calls(sim: Sim) -> list[tuple[int, object]]:
    return [(e.iteration, e.args) for e in sim.effects if isinstance(e, Invoke)]


def test_loop_without_every_waits_the_floor_interval_between_iterations() -> None:
    """With no `every`, an iteration whose `until` is false waits REPEAT_FLOOR durably (a
    condition that never holds must not spin), then runs again with its inputs resolved again."""
    sim = Sim(LOOP % ("output.done", "max_iterations: 3"))
    sim.advance()
    sim.succeed("job", {"done": False})
    job = sim.step("job")
    assert (job.phase, job.next_at) == ("sleeping", T0 + REPEAT_FLOOR)
    assert next_due(sim.state) == T0 + REPEAT_FLOOR and _calls(sim) == [(0, {"try": 1})]
    sim.tick(seconds=REPEAT_FLOOR.total_seconds() - 0.001)
    assert _calls(sim) == [(0, {"try": 1})]
    sim.tick(seconds=0.001)
    assert _calls(sim) == [(0, {"try": 1}), (1, {"try": 2})]
    assert (job.phase, job.next_at, job.iteration) == ("running", None, 1)


def test_loop_without_max_iterations_stops_at_the_default_bound() -> None:
    """A loop bounded by a long timeout alone fails after MAX_ITERATIONS iterations with
    `until` false."""
    sim = Sim(LOOP % ("output.done", "every: 1s, timeout: 365d"))
    sim.advance()
    for _ in range(MAX_ITERATIONS):
        sim.succeed("job", {"done": False})
        sim.tick(seconds=1)
    job = sim.step("job")
    assert (job.state.value, job.error) == (
        "failed",
        f"repeat.until did not hold within {MAX_ITERATIONS} iterations",
    )
    assert len(job.iterations) == MAX_ITERATIONS


def test_until_reads_the_number_of_the_iteration_just_ended() -> None:
    """`iteration` in `until` is the count of iterations run so far, so `iteration >= 2` ends the
    loop after the second."""
    sim = Sim(LOOP % ("iteration >= 2", "max_iterations: 5"))
    sim.advance()
    sim.succeed("job", {"n": 1})
    sim.tick(seconds=1)
    assert sim.step("job").state.value == "running"
    sim.succeed("job", {"n": 2})
    job = sim.step("job")
    assert (job.state.value, job.output, [(i.n, i.until) for i in job.iterations]) == (
        "succeeded",
        {"n": 2},
        [(1, False), (2, True)],
    )


def test_until_that_cannot_be_evaluated_fails_the_step() -> None:
    """An `until` comparing a string with a number fails the step saying why, and stops the run."""
    sim = Sim(LOOP % ("output.n > 1", "max_iterations: 5"))
    sim.advance()
    sim.succeed("job", {"n": "many"})
    job = sim.step("job")
    assert (job.state.value, job.error) == (
        "failed",
        "repeat.until could not be evaluated: cannot compare str > int",
    )
    assert sim.state.stop is not None and sim.finished


def test_loop_giving_up_after_max_iterations_fails_the_step() -> None:
    """The last allowed iteration with `until` still false ends the step failed, not succeeded."""
    sim = Sim(LOOP % ("output.done", "max_iterations: 2"))
    sim.advance()
    sim.succeed("job", {"done": False})
    sim.tick(seconds=1)
    sim.succeed("job", {"done": False})
    job = sim.step("job")
    assert (job.state.value, job.error, len(job.iterations)) == (
        "failed",
        "repeat.until did not hold within 2 iterations",
        2,
    )
    assert _calls(sim) == [(0, {"try": 1}), (1, {"try": 2})]


def test_iteration_returning_past_the_timeout_fails_the_step() -> None:
    """A loop whose call comes back after its timeout ends failed instead of running again."""
    sim = Sim(LOOP % ("output.done", "timeout: 45s"))
    sim.advance()
    sim.tick(seconds=50)
    sim.succeed("job", {"done": False})
    job = sim.step("job")
    assert (job.state.value, job.error) == ("failed", "repeat.until did not hold within 45s")
    assert _calls(sim) == [(0, {"try": 1})]


def test_iteration_returning_exactly_at_the_timeout_fails_the_step() -> None:
    """The timeout includes its last instant: a call back exactly then runs no more iterations."""
    sim = Sim(LOOP % ("output.done", "timeout: 45s"))
    sim.advance()
    sim.tick(seconds=45)
    sim.succeed("job", {"done": False})
    assert sim.step("job").error == "repeat.until did not hold within 45s"
    assert _calls(sim) == [(0, {"try": 1})]


def test_next_iteration_whose_inputs_do_not_resolve_fails_the_step() -> None:
    """Inputs read from the previous output are resolved again for each iteration; one that no
    longer resolves fails the step with the reference's error."""
    sim = Sim(
        """
name: loop
steps:
  - id: job
    tool: t.x
    with: {last: "${previous.output.status.code}"}
    repeat: {until: "output.done", max_iterations: 3}
"""
    )
    sim.advance()
    sim.succeed("job", {"status": "x", "done": False})
    sim.tick(seconds=1)
    job = sim.step("job")
    assert (job.state.value, job.error) == (
        "failed",
        "${previous.output.status.code}: cannot take 'code' of str",
    )
    assert sim.state.stop is not None


PLAN = """
name: planned
steps:
  - {id: plan, tool: t.x}
  - id: run
    needs: [plan]
    pipeline: {definition: "${steps.plan.output.json}", allowed_tools: [data.echo], max_steps: 5}
    with: {goal: x}
"""


def test_plan_without_a_gate_runs_as_checked() -> None:
    """A valid plan on a step without approval runs at once: the checked plan, with its inputs."""
    sim = Sim(PLAN)
    sim.advance()
    sim.succeed("plan", {"json": {"name": "p"}})
    pinned = {"name": "p", "steps": [{"id": "s", "tool": "data.echo"}]}
    lifecycle.record_plan(sim.state, "run", PlanRecord(definition=pinned, digest="sha256:p"))
    sim.advance()
    assert sim.effects[-1] == Invoke("run", 0, {"goal": "x"}, plan=pinned)
    assert sim.step("run").phase == "running"


EACH = """
name: each
input: {type: object, properties: {n: {type: array}}}
steps:
  - {id: write, for_each: "${input.n}", tool: t.x}
"""


def test_for_each_step_fails_with_its_first_failed_item_once_all_are_back() -> None:
    """Items out together: one fails, the others come back, and the step ends failed naming the
    first failed item, its output the items' outputs."""
    sim = Sim(EACH, {"n": [0, 1, 2]})
    sim.advance()
    sim.succeed("write.0", {"v": 0})
    sim.fail("write.2", "disk full")
    sim.fail("write.1", "no space")
    step = sim.step("write")
    assert (step.state.value, step.error, step.output) == (
        "failed",
        "item 1 failed: no space",
        [{"v": 0}, None, None],
    )
    assert sim.state.stop is not None
    assert sim.state.stop.message == "item 2 of step 'write' failed: disk full"


def test_plan_digest_is_the_definitions_digest_or_none() -> None:
    """A checked plan is recorded with the digest of its definition; a refused one has none."""
    assert plan_digest({"name": "p", "steps": []}) == (
        "sha256:9925b6d792dfa5e8c15debbf5964f0ed8fa416fefda2072ebec94a37cb122e04"
    )
    assert plan_digest(None) is None


def test_sleeping_loop_wakes_at_its_time_not_before() -> None:
    """A loop sleeping 30s runs again at exactly 30s, not a second earlier."""
    sim = Sim(LOOP % ("output.done", "every: 30s, max_iterations: 3"))
    sim.advance()
    sim.succeed("job", {"done": False})
    sim.tick(seconds=29)
    assert len(_calls(sim)) == 1
    sim.tick(seconds=1)
    assert _calls(sim)[-1] == (1, {"try": 2})
    assert sim.step("job").next_at is None
    assert sim.now == T0 + timedelta(seconds=30)


def test_failed_item_opens_its_own_on_failure_gate() -> None:
    """An item failing under a per-item on_failure gate opens gate `<step>.<index>` on its error
    and inputs instead of failing the run."""
    sim = Sim(
        EACH.replace(
            "tool: t.x}",
            "tool: t.x, with: {n: '${item}'}, approval: {approvers: ['role:ops'], stage: on_failure}}",
        ),
        {"n": [5, 6]},
    )
    sim.advance()
    sim.fail("write.1", "disk full")
    gate = sim.gate("write.1")
    assert (gate.stage, gate.item, gate.subject) == (
        "on_failure",
        1,
        {"error": "disk full", "inputs": {"n": 6}},
    )
    assert sim.step("write.1").state.value == "waiting" and sim.state.stop is None


def test_for_each_step_records_when_it_started() -> None:
    """A for_each step starts when its needs are done, and says so."""
    sim = Sim(
        """
name: later
input: {type: object, properties: {n: {type: array}}}
steps:
  - {id: a, tool: t.x}
  - {id: write, needs: [a], for_each: "${input.n}", tool: t.x}
""",
        {"n": [1]},
    )
    sim.advance()
    sim.tick(minutes=5)
    sim.succeed("a")
    assert sim.step("write").started_at == T0 + timedelta(minutes=5)


def test_for_each_reference_that_does_not_resolve_fails_the_step() -> None:
    """A for_each list that cannot be read fails the step with the reference's error and stops
    the run."""
    sim = Sim(EACH.replace("${input.n}", "${input.n.first}"), {"n": [1, 2]})
    sim.advance()
    step = sim.step("write")
    assert (step.state.value, step.error, step.items) == (
        "failed",
        "${input.n.first}: cannot take 'first' of list",
        None,
    )
    assert sim.state.stop is not None
    assert (
        sim.state.stop.message
        == "step 'write' failed: ${input.n.first}: cannot take 'first' of list"
    )


def test_for_each_takes_exactly_the_item_limit_and_refuses_one_more() -> None:
    """A list of MAX_ITEMS items expands; one item more fails the step, naming both counts."""
    sim = Sim(EACH, {"n": list(range(MAX_ITEMS))})
    sim.advance()
    assert len(sim.step("write").items or []) == MAX_ITEMS
    sim = Sim(EACH, {"n": list(range(MAX_ITEMS + 1))})
    sim.advance()
    step = sim.step("write")
    assert (step.state.value, step.error, step.items) == (
        "failed",
        f"for_each has {MAX_ITEMS + 1} items, more than {MAX_ITEMS}",
        None,
    )
    assert sim.state.stop is not None


CHECKED = """
name: checked
steps:
  - id: a
    tool: t.x
    check: {condition: "output.n > 1", message: "too few"}
"""


def test_check_that_cannot_be_evaluated_fails_the_step() -> None:
    """A check comparing a string with a number fails the step saying why, and stops the run."""
    sim = Sim(CHECKED)
    sim.advance()
    sim.succeed("a", {"n": "many"})
    a = sim.step("a")
    assert (a.state.value, a.error) == (
        "failed",
        "check could not be evaluated: cannot compare str > int",
    )
    assert sim.state.stop is not None


REVIEWED = """
name: reviewed
steps:
  - id: a
    tool: t.x
    approval: {approvers: ["role:ops"], stage: %s, review: "n is ${output.n}"}
"""


def test_after_gate_review_reads_the_output() -> None:
    """An after gate's review is resolved against the step's output."""
    sim = Sim(REVIEWED % "after")
    sim.advance()
    sim.succeed("a", {"n": 3})
    assert sim.gate("a").review == "n is 3"


def test_before_gate_review_cannot_read_an_output() -> None:
    """Before its call a step has no output: a review reading one says it did not resolve."""
    sim = Sim(REVIEWED % "before")
    sim.advance()
    assert sim.gate("a").review == (
        "n is ${output.n} (references not resolved: ${output.n}: `output` does not exist here)"
    )


def test_priority_condition_that_cannot_be_evaluated_is_normal() -> None:
    """A priority condition comparing a string with a number leaves the gate at normal."""
    sim = Sim(
        """
name: pri
steps:
  - id: a
    tool: t.x
    approval: {approvers: ["role:ops"], priority: {urgent: "steps.a.status > 3"}}
"""
    )
    sim.advance()
    assert sim.gate("a").priority == "normal"


AUTO_AFTER = """
name: auto
input: {type: object, properties: {n: {type: array}}}
steps:
  - id: a
    for_each: "${input.n}"
    tool: t.x
    approval: {approvers: ["role:ops"], stage: after, auto_approve_if: "steps.a.output.n < 5"}
"""


def test_item_after_gate_auto_approves_on_the_items_own_output() -> None:
    """auto_approve_if at an item's after gate reads that item's output as the step's: a small n
    approves it with the reason in the audit, a large one leaves it to people."""
    sim = Sim(AUTO_AFTER, {"n": [0, 1]})
    sim.advance()
    sim.succeed("a.0", {"n": 3})
    sim.succeed("a.1", {"n": 9})
    assert (sim.gate("a.0").outcome, sim.step("a.0").state.value) == ("approve", "succeeded")
    assert sim.gate("a.1").open
    assert [(e.kind, e.gate, e.reason) for e in sim.state.audit] == [
        ("auto_approve", "a.0", "auto_approve_if held: steps.a.output.n < 5")
    ]


BIG = {"uri": "file:///a/big.json", "path": "run/outputs/big.json", "size": 9, "sha256": "ab"}


def test_reference_into_an_offloaded_output_is_left_for_the_activity() -> None:
    """A step reading into an output kept in the artifact store is given a marker and a slot the
    activity fills, not the stored marker's contents."""
    sim = Sim(
        """
name: offload
steps:
  - {id: a, tool: t.x}
  - {id: b, tool: t.x, needs: [a], with: {x: "${steps.a.output.items.0.id}"}}
"""
    )
    sim.advance()
    lifecycle.record_result(
        sim.state,
        "a",
        Result(round=0, ok=True, output={ARTIFACT_MARKER: BIG}, artifact=BIG, preview="(stored)"),
    )
    (call,) = sim.advance()
    assert isinstance(call, Invoke)
    marker = {ARTIFACT_MARKER: BIG, "path": ["items", "0", "id"]}
    assert call.args == {"x": marker}
    assert [(s.path, s.artifact_path, s.expect) for s in call.slots] == [
        (["x"], ["items", "0", "id"], marker)
    ]
