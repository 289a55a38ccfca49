"""The scheduler: what starts, what skips, what a result or a decided gate does, how a run stops."""

from __future__ import annotations

from tests.rules.sim import T0, Sim
from workflows.models import LifecycleInput
from workflows.rules import lifecycle
from workflows.rules.scheduler import Invoke, Notify
from workflows.rules.state import Result

CHAIN_REVERSED = """
name: hang
steps:
  - {id: c, tool: t.x, needs: [b]}
  - {id: b, tool: t.x, needs: [a]}
  - {id: a, tool: t.x, if: "false"}
"""


def test_skipped_upstream_listed_last_skips_the_whole_chain() -> None:
    """c needs b needs a, a is skipped, listed c, b, a: every step ends skipped, nothing hangs."""
    sim = Sim(CHAIN_REVERSED)
    assert sim.advance() == []
    assert sim.states() == {"c": "skipped", "b": "skipped", "a": "skipped"}
    assert sim.finished
    assert sim.step("b").reason == "needs 'a' (skipped)"
    assert sim.step("a").reason == "condition false: false"


def test_reversed_chain_runs_in_dependency_order() -> None:
    """Steps listed against their order still start one after another as their needs finish."""
    sim = Sim(CHAIN_REVERSED.replace('if: "false"', 'if: "true"'))
    assert [e.step for e in sim.advance() if isinstance(e, Invoke)] == ["a"]
    assert [e.step for e in sim.succeed("a") if isinstance(e, Invoke)] == ["b"]
    assert [e.step for e in sim.succeed("b") if isinstance(e, Invoke)] == ["c"]
    sim.succeed("c")
    assert sim.finished and set(sim.states().values()) == {"succeeded"}
    assert [sim.step(s).completed_seq for s in "abc"] == [1, 2, 3]


def test_independent_steps_start_together_with_resolved_inputs() -> None:
    """Every ready step starts in the same pass, its references resolved."""
    sim = Sim(
        """
name: fan
input: {type: object, properties: {who: {type: string}}}
steps:
  - {id: a, tool: t.x, with: {who: "${input.who}", run: "${run.workflow_id}"}}
  - {id: b, tool: t.x}
  - {id: c, tool: t.x, needs: [a, b], with: {from_a: "${steps.a.output.n}", s: "${steps.b.status}"}}
""",
        {"who": "me"},
    )
    first = sim.advance()
    assert first == [Invoke("a", 0, {"who": "me", "run": "wf-1"}), Invoke("b", 0, {})]
    assert sim.step("a").state.value == "running" and sim.step("a").started_at == T0
    sim.succeed("a", {"n": 7})
    assert sim.invoked() == ["a", "b"]
    sim.succeed("b")
    assert sim.effects[-1] == Invoke("c", 0, {"from_a": 7, "s": "succeeded"})


def test_max_parallel_bounds_calls_in_flight() -> None:
    """No more than max_parallel tool calls are out at once; the next starts as one returns."""
    sim = Sim(
        """
name: bounded
max_parallel: 2
steps: [{id: a, tool: t.x}, {id: b, tool: t.x}, {id: c, tool: t.x}]
"""
    )
    assert [e.step for e in sim.advance()] == ["a", "b"]
    assert sim.step("c").state.value == "pending"
    assert [e.step for e in sim.succeed("b")] == ["c"]


def test_a_gate_waiting_does_not_use_a_parallel_slot() -> None:
    """max_parallel counts tool calls out, not steps waiting for a person."""
    sim = Sim(
        """
name: bounded
max_parallel: 1
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"]}}
  - {id: b, tool: t.x}
"""
    )
    assert sim.advance() == [Notify("a", "a", "opened"), Invoke("b", 0, {})]


def test_condition_errors_and_bad_references_fail_the_step() -> None:
    """A condition that cannot be evaluated, or a reference that does not resolve, fails the step
    with a message and stops the run; steps never reached end skipped."""
    sim = Sim(
        """
name: bad
steps:
  - {id: a, tool: t.x, if: "len(5) > 1"}
  - {id: b, tool: t.x, needs: [a]}
"""
    )
    sim.advance()
    assert sim.step("a").state.value == "failed" and "len() failed" in (sim.step("a").error or "")
    assert sim.state.stop is not None and sim.state.stop.kind == "failed"
    assert sim.states() == {"a": "failed", "b": "skipped"}
    assert sim.step("b").reason == "not reached: the run failed"
    sim = Sim("name: r\nsteps: [{id: a, tool: t.x, with: {x: '${input.nope.deeper}'}}]")
    sim.advance()
    assert sim.step("a").state.value == "failed" and "no field 'nope'" in (
        sim.step("a").error or ""
    )


def test_on_error_continue_keeps_the_run_going() -> None:
    """A failed step with on_error: continue does not stop the run; its dependents skip."""
    sim = Sim(
        """
name: soft
steps:
  - {id: a, tool: t.x, on_error: continue}
  - {id: b, tool: t.x, needs: [a]}
  - {id: c, tool: t.x}
"""
    )
    sim.advance()
    sim.fail("a", "nope", attempts=3)
    assert sim.state.stop is None
    assert sim.step("a").attempts == 3 and sim.step("a").error == "nope"
    assert sim.step("b").state.value == "skipped"
    sim.succeed("c")
    assert sim.finished


def test_allow_skipped_needs_runs_after_a_skip_but_not_after_a_failure() -> None:
    """allow_skipped_needs lets a step follow a skipped step, never a failed one."""
    sim = Sim(
        """
name: opt
steps:
  - {id: a, tool: t.x, if: "false"}
  - {id: f, tool: t.x, on_error: continue}
  - {id: b, tool: t.x, needs: [a], allow_skipped_needs: true}
  - {id: c, tool: t.x, needs: [f], allow_skipped_needs: true}
"""
    )
    sim.advance()
    assert sim.invoked() == ["f", "b"]
    sim.fail("f")
    assert sim.step("c").state.value == "skipped"


def test_failure_stops_new_starts_and_cancels_nothing_itself() -> None:
    """After a failure no step starts; calls out are left to the shell, which cancels them, and
    the run finishes when they come back."""
    sim = Sim(
        """
name: stop
steps:
  - {id: a, tool: t.x}
  - {id: b, tool: t.x}
  - {id: c, tool: t.x, needs: [a]}
"""
    )
    sim.advance()
    sim.fail("a")
    assert not sim.finished and sim.step("c").state.value == "pending"
    lifecycle.record_result(sim.state, "b", Result(round=0, ok=False, cancelled=True, attempts=0))
    sim.advance()
    assert sim.states() == {"a": "failed", "b": "cancelled", "c": "skipped"}
    assert sim.finished


def test_a_success_arriving_after_the_stop_counts_for_compensation() -> None:
    """A call that finished before its cancel took effect is succeeded (its side effect happened),
    without its after-gate."""
    sim = Sim(
        """
name: late
steps:
  - {id: a, tool: t.x}
  - {id: b, tool: t.x, approval: {stage: after, approvers: ["role:ops"]}}
"""
    )
    sim.advance()
    sim.fail("a")
    sim.succeed("b", {"v": 1})
    assert sim.step("b").state.value == "succeeded" and sim.step("b").gate is None


def test_a_stale_result_is_ignored() -> None:
    """A result for another round than the step's is dropped."""
    sim = Sim("name: s\nsteps: [{id: a, tool: t.x}]")
    sim.advance()
    lifecycle.record_result(sim.state, "a", Result(round=3, ok=True))
    assert sim.step("a").result is None
    sim.advance()
    assert sim.step("a").state.value == "running"


GATED = """
name: g
steps:
  - id: a
    tool: t.x
    with: {amount: 10}
    approval: {stage: %s, approvers: ["role:ops"]}
  - {id: b, tool: t.x, needs: [a], with: {seen: "${steps.a.output}"}}
"""


def test_before_gate_opens_with_the_inputs_and_runs_on_approval() -> None:
    """The step waits at its gate, notifies, and runs with its inputs once approved."""
    sim = Sim(GATED % "before")
    assert sim.advance() == [Notify("a", "a", "opened")]
    assert sim.step("a").state.value == "waiting" and sim.gate("a").subject == {"amount": 10}
    assert sim.vote("a", "approve") is None
    assert sim.effects[-1] == Invoke("a", 0, {"amount": 10})


def test_before_gate_modify_runs_with_the_patched_inputs() -> None:
    """A modify's patched inputs are what the tool gets."""
    sim = Sim(GATED % "before")
    sim.advance()
    sim.vote("a", "modify", patch={"amount": 5, "note": "x"})
    assert sim.effects[-1] == Invoke("a", 0, {"amount": 5, "note": "x"})


def test_before_gate_skip_reject_and_cancel() -> None:
    """Skip skips the step (and its dependents), reject fails it, cancel stops the run."""
    sim = Sim(GATED % "before")
    sim.advance()
    sim.vote("a", "skip")
    assert sim.states() == {"a": "skipped", "b": "skipped"}
    assert sim.step("a").reason == "skipped at before gate by alice"
    sim = Sim(GATED % "before")
    sim.advance()
    sim.vote("a", "reject")
    assert sim.step("a").error == "rejected at before gate by alice"
    assert sim.state.stop is not None and sim.state.stop.kind == "failed"
    sim = Sim(GATED % "before")
    sim.advance()
    sim.vote("a", "cancel")
    assert sim.state.stop is not None and sim.state.stop.kind == "cancelled"
    assert sim.state.stop.by == "alice" and sim.states() == {"a": "cancelled", "b": "cancelled"}


def test_after_gate_reviews_the_output() -> None:
    """After the call the gate shows its output; approve keeps it, modify patches it."""
    sim = Sim(GATED % "after")
    sim.advance()
    assert sim.succeed("a", {"v": 1}) == [Notify("a", "a", "opened")]
    assert sim.gate("a").subject == {"v": 1} and sim.step("a").state.value == "waiting"
    sim.vote("a", "modify", patch={"v": 2})
    assert sim.step("a").output == {"v": 2} and sim.step("a").state.value == "succeeded"
    assert sim.effects[-1] == Invoke("b", 0, {"seen": {"v": 2}})


def test_after_gate_retry_reruns_with_a_patch_in_a_new_round() -> None:
    """Retry runs the tool again with patched inputs; the idempotency round moves on."""
    sim = Sim(GATED % "after")
    sim.advance()
    sim.succeed("a", {"v": 1})
    sim.vote("a", "retry", patch={"amount": 11})
    assert sim.effects[-1] == Invoke("a", 1, {"amount": 11})
    assert sim.step("a").round == 1
    sim.succeed("a", {"v": 3})
    assert sim.gate("a").round == 1 and sim.gate("a").subject == {"v": 3}
    sim.vote("a", "approve")
    assert sim.step("a").attempts == 2


def test_after_gate_skip_drops_the_output() -> None:
    """A skipped step has no output, so its dependents skip too."""
    sim = Sim(GATED % "after")
    sim.advance()
    sim.succeed("a", {"v": 1})
    sim.vote("a", "skip")
    assert not sim.step("a").has_output and sim.states()["b"] == "skipped"


def test_on_failure_gate_retry_skip_with_substitute_and_reject() -> None:
    """At an on_failure gate retry runs again, skip may give a substitute output that dependents
    use, and reject fails the step with the original error."""
    sim = Sim(GATED % "on_failure")
    sim.advance()
    sim.fail("a", "disk full")
    assert sim.gate("a").subject == {"error": "disk full", "inputs": {"amount": 10}}
    sim.vote("a", "retry")
    assert sim.effects[-1] == Invoke("a", 1, {"amount": 10}) and sim.step("a").error is None
    sim.fail("a", "disk full again")
    sim.vote("a", "skip", actor="bob", patch={"v": "sub"})
    assert sim.step("a").state.value == "skipped" and sim.step("a").output == {"v": "sub"}
    assert sim.effects[-1] == Invoke("b", 0, {"seen": {"v": "sub"}})
    sim = Sim(GATED % "on_failure")
    sim.advance()
    sim.fail("a", "disk full")
    sim.vote("a", "reject")
    assert sim.step("a").error == "disk full; rejected at on_failure gate by alice"


def test_auto_mode_decides_every_gate() -> None:
    """approval_mode auto approves before and after gates and rejects on_failure gates."""
    sim = Sim(GATED % "before", approval_mode="auto")
    assert sim.advance() == [Invoke("a", 0, {"amount": 10})]
    assert sim.state.audit[-1].kind == "auto_approve" and sim.gate("a").decided_by == ["system"]
    sim = Sim(GATED % "on_failure", approval_mode="auto")
    sim.advance()
    sim.fail("a")
    assert sim.step("a").state.value == "failed"


def test_auto_approve_if_holds_fails_or_cannot_be_evaluated() -> None:
    """A condition that holds approves; false waits for people; an error waits for people and
    says why in the audit."""
    text = """
name: aa
steps:
  - {id: s, tool: t.x}
  - id: a
    needs: [s]
    tool: t.x
    approval: {approvers: ["role:ops"], auto_approve_if: "%s"}
"""
    for cond, auto in [("steps.s.output.risk < 2", True), ("steps.s.output.risk > 2", False)]:
        sim = Sim(text % cond)
        sim.advance()
        sim.succeed("s", {"risk": 1})
        assert (not sim.gate("a").open) is auto
    sim = Sim(text % "len(steps.s.output.risk) > 1")
    sim.advance()
    sim.succeed("s", {"risk": 1})
    assert sim.gate("a").open and sim.state.audit[-1].outcome == "refused"


def test_pause_holds_new_starts_but_not_decisions() -> None:
    """While paused nothing new starts; a decided gate still lets its step run."""
    sim = Sim(GATED % "before")
    sim.advance()
    assert lifecycle.pause(sim.state, LifecycleInput(actor="op", reason="window"), T0)
    assert not lifecycle.pause(sim.state, None, T0)
    sim.vote("a", "approve")
    assert sim.effects[-1] == Invoke("a", 0, {"amount": 10})
    sim.succeed("a")
    assert sim.step("b").state.value == "pending"
    assert lifecycle.resume(sim.state, None, T0)
    sim.advance()
    assert sim.effects[-1].step == "b"  # type: ignore[union-attr]


def test_hold_starts_nothing_new() -> None:
    """While the run is about to continue as new, no step starts."""
    sim = Sim(GATED % "before")
    assert sim.advance(hold=True) == []
    assert sim.advance() == [Notify("a", "a", "opened")]


def test_cancel_closes_open_gates() -> None:
    """A cancel while a gate is open closes it (by the system) and cancels its step."""
    sim = Sim(GATED % "before")
    sim.advance()
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="olga", reason="wrong ticket"), T0)
    sim.advance()
    assert sim.gate("a").outcome == "cancel" and sim.gate("a").decided_by == ["system"]
    assert sim.states() == {"a": "cancelled", "b": "cancelled"} and sim.finished
    assert sim.state.stop is not None
    assert sim.state.stop.message == "run cancelled by olga: wrong ticket"


def test_a_vote_decided_after_the_stop_starts_nothing() -> None:
    """A go-on outcome applied once the run stopped cancels the step instead of calling the tool."""
    sim = Sim(GATED % "before")
    sim.advance()
    sim.gate("a").outcome = "approve"
    sim.state.stop = lifecycle.Stop(kind="failed", message="x")
    sim.advance()
    assert sim.invoked() == [] and sim.step("a").state.value == "cancelled"


DEPLOY = """
name: deploy
steps:
  - {id: list_agents, tool: t.x}
  - {id: select_agent, tool: t.x, needs: [list_agents]}
  - {id: validate_repo, tool: t.x}
"""


def test_a_failure_and_a_result_in_one_task_start_no_call_that_is_never_made() -> None:
    """`validate_repo` fails (stopping the run) in the same workflow task in which
    `list_agents` succeeds: `select_agent`, listed between them, is not left started with no
    call made (the shell cancels calls once the run stops, and a call that never began never
    reports back); it ends cancelled, and the run ends."""
    sim = Sim(DEPLOY)
    sim.advance()
    assert sorted(sim.invoked()) == ["list_agents", "validate_repo"]
    lifecycle.record_result(sim.state, "list_agents", Result(round=0, ok=True, output={}))
    lifecycle.record_result(sim.state, "validate_repo", Result(round=0, ok=False, error="404"))
    effects = sim.advance()
    assert [e for e in effects if isinstance(e, Invoke)] == []
    assert sim.state.in_flight() == []
    assert sim.step("select_agent").state.value == "cancelled"
    assert sim.step("select_agent").reason == "run stopped before its call was made"
    assert sim.finished and sim.states() == {
        "list_agents": "succeeded",
        "select_agent": "cancelled",
        "validate_repo": "failed",
    }
