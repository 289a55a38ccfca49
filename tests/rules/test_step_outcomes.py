"""How each step ends: the state, reason, error and time it ends with, the audit of gates that
decide themselves, and what references see of the run."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.sim import T0, Sim
from workflows.models import AuditEntry, LifecycleInput
from workflows.rules import lifecycle, scheduler
from workflows.rules.scheduler import Invoke, Notify, RunContext
from workflows.rules.state import Result, Stop

GATED = """
name: g
steps:
  - id: a
    tool: t.x
    with: {amount: 10}
    approval: {stage: %s, approvers: ["role:ops"]%s}
  - {id: b, tool: t.x, needs: [a], with: {seen: "${steps.a.output}"}}
"""


def gated(stage: str, extra: str = "") -> Sim:
    sim = Sim(GATED % (stage, extra))
    sim.advance()
    return sim


def ends(sim: Sim, step_id: str) -> tuple[str, str | None, str | None, object]:
    s = sim.step(step_id)
    return s.state.value, s.reason, s.error, s.ended_at


def test_a_result_carries_its_preview_artifact_attempts_and_end_time() -> None:
    """A successful call's output, preview and artifact are kept, and it ends at the clock."""
    sim = Sim("name: s\nsteps: [{id: a, tool: t.x}]")
    sim.advance()
    sim.now += timedelta(minutes=3)
    artifact = {"path": "wf/a.json", "sha256": "h"}
    lifecycle.record_result(
        sim.state,
        "a",
        Result(round=0, ok=True, output={"n": 1}, preview="{n}", artifact=artifact, attempts=2),
    )
    sim.advance()
    a = sim.step("a")
    assert (a.output, a.has_output, a.preview, a.artifact, a.attempts) == (
        {"n": 1},
        True,
        "{n}",
        artifact,
        2,
    )
    assert (a.state.value, a.started_at, a.ended_at, a.completed_seq) == (
        "succeeded",
        T0,
        T0 + timedelta(minutes=3),
        1,
    )


def test_a_failure_without_a_message_is_failed() -> None:
    """A failed call that brought no message ends the step and the run with `failed`."""
    sim = Sim("name: s\nsteps: [{id: a, tool: t.x}]")
    sim.advance()
    sim.now += timedelta(seconds=5)
    lifecycle.record_result(sim.state, "a", Result(round=0, ok=False))
    sim.advance()
    assert ends(sim, "a") == ("failed", None, "failed", T0 + timedelta(seconds=5))
    assert sim.state.stop == Stop(kind="failed", message="step 'a' failed: failed")


def test_a_cancelled_call_ends_its_step_as_stopped() -> None:
    """A call that came back cancelled ends its step cancelled, because the run stopped."""
    sim = Sim("name: s\nsteps: [{id: a, tool: t.x}, {id: b, tool: t.x}]")
    sim.advance()
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="olga"), T0)
    sim.now += timedelta(seconds=1)
    lifecycle.record_result(sim.state, "a", Result(round=0, ok=False, cancelled=True))
    sim.advance()
    assert ends(sim, "a") == ("cancelled", "run stopped", None, sim.now)
    assert sim.step("b").state.value == "running"


def test_a_reference_that_fails_ends_the_step_when_it_started() -> None:
    """A step whose inputs cannot resolve has started and failed at the same moment."""
    sim = Sim("name: r\nsteps: [{id: a, tool: t.x, with: {x: '${input.nope}'}}]")
    sim.now += timedelta(minutes=1)
    sim.advance()
    a = sim.step("a")
    assert (a.state.value, a.started_at, a.ended_at) == ("failed", sim.now, sim.now)
    assert a.error == "${input.nope}: no field 'nope'"


def test_skips_record_their_reason_and_time() -> None:
    """A false condition and a skipped need each end the step skipped, now, saying why."""
    sim = Sim(
        """
name: s
steps:
  - {id: b, tool: t.x, needs: [a, c]}
  - {id: a, tool: t.x, if: "false"}
  - {id: c, tool: t.x, if: "1 > 2"}
"""
    )
    sim.now += timedelta(hours=1)
    assert scheduler.advance(sim.state, sim.d, sim.ctx, sim.now) == []
    assert ends(sim, "a") == ("skipped", "condition false: false", None, sim.now)
    assert ends(sim, "c") == ("skipped", "condition false: 1 > 2", None, sim.now)
    assert ends(sim, "b") == ("skipped", "needs 'a' (skipped), 'c' (skipped)", None, sim.now)


def test_a_failed_condition_under_continue_reaches_steps_listed_before_it() -> None:
    """A step failing on its condition, with on_error continue, skips its dependents in the same
    advance, whatever the listing order."""
    sim = Sim(
        """
name: s
steps:
  - {id: b, tool: t.x, needs: [a]}
  - {id: a, tool: t.x, if: "len(1)", on_error: continue}
"""
    )
    sim.advance()
    assert sim.states() == {"b": "skipped", "a": "failed"} and sim.finished


def test_a_gate_decision_reaches_steps_listed_before_it() -> None:
    """A skip at a gate skips the dependents listed earlier in the same advance."""
    sim = Sim(
        """
name: s
steps:
  - {id: b, tool: t.x, needs: [a]}
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"]}}
"""
    )
    sim.advance()
    sim.vote("a", "skip")
    assert sim.states() == {"b": "skipped", "a": "skipped"} and sim.finished


def test_gate_outcomes_end_the_step_saying_who_decided() -> None:
    """Skip, reject and cancel name every decider, end the step now, and keep who let it go on."""
    sim = gated("before", ", quorum: 2")
    sim.now += timedelta(minutes=5)
    sim.vote("a", "skip")
    sim.vote("a", "skip", actor="bob")
    assert ends(sim, "a") == ("skipped", "skipped at before gate by alice, bob", None, sim.now)
    assert sim.step("a").approvers_seen == ["alice", "bob"]
    sim = gated("after")
    sim.succeed("a", {"v": 1})
    sim.now += timedelta(minutes=5)
    sim.vote("a", "reject")
    assert ends(sim, "a") == ("failed", None, "rejected at after gate by alice", sim.now)
    sim = gated("before")
    sim.now += timedelta(minutes=5)
    sim.vote("a", "cancel")
    assert ends(sim, "a") == ("cancelled", "cancelled at before gate by alice", None, sim.now)
    assert sim.state.stop == Stop(
        kind="cancelled", message="run cancelled at a gate by alice", by="alice"
    )


def test_approvers_seen_gather_over_rounds() -> None:
    """Who let a step go on is remembered across rounds of its gate."""
    sim = gated("on_failure")
    sim.fail("a", "disk full")
    sim.vote("a", "retry", actor="zoe")
    sim.fail("a", "disk full")
    sim.vote("a", "skip", actor="bob")
    assert sim.step("a").approvers_seen == ["bob", "zoe"]


def test_after_gate_approval_keeps_the_output_and_ends_now() -> None:
    """Approving after the call succeeds the step with the reviewed output, at the clock."""
    sim = gated("after")
    sim.succeed("a", {"v": 1})
    sim.now += timedelta(minutes=2)
    sim.vote("a", "approve")
    assert ends(sim, "a") == ("succeeded", None, None, sim.now)
    assert sim.step("a").output == {"v": 1} and sim.effects[-1] == Invoke(
        "b", 0, {"seen": {"v": 1}}
    )


def test_retries_number_their_rounds() -> None:
    """Each retry starts the next round: the idempotency key never repeats."""
    sim = gated("on_failure")
    sim.fail("a")
    sim.vote("a", "retry")
    sim.fail("a")
    sim.vote("a", "retry", actor="bob")
    assert sim.step("a").round == 2 and sim.effects[-1] == Invoke("a", 2, {"amount": 10})


def test_on_failure_skip_without_substitute_leaves_no_output() -> None:
    """Skipping a failure without a substitute gives the step no output, so dependents skip."""
    sim = gated("on_failure")
    sim.fail("a", "disk full")
    sim.vote("a", "skip")
    assert not sim.step("a").has_output and sim.step("a").output is None
    assert ends(sim, "b") == ("skipped", "needs 'a' (skipped)", None, T0)


def test_on_failure_reject_repeats_the_failure_the_gate_showed() -> None:
    """Rejecting a failure names the error its gate showed, if it showed one, then who rejected."""
    for error in ("disk full", None):
        sim = gated("on_failure")
        lifecycle.record_result(sim.state, "a", Result(round=0, ok=False, error=error))
        sim.advance()
        shown = sim.gate("a").subject["error"]
        sim.vote("a", "reject")
        failure = f"{shown}; " if shown else ""
        assert sim.step("a").error == f"{failure}rejected at on_failure gate by alice"


def test_go_on_outcomes_decided_after_the_stop_cancel_the_step() -> None:
    """A retry or an approval that lands after the run stopped starts nothing and ends the step
    now, as stopped."""
    for stage, outcome in (("before", "approve"), ("on_failure", "retry")):
        sim = gated(stage)
        if stage == "on_failure":
            sim.fail("a")
        sim.gate("a").outcome = outcome  # type: ignore[assignment]
        sim.state.stop = Stop(kind="failed", message="x")
        sim.now += timedelta(minutes=1)
        calls = len(sim.invoked())
        sim.advance()
        assert len(sim.invoked()) == calls
        assert ends(sim, "a") == ("cancelled", "run stopped", None, sim.now)


def test_wind_down_closes_open_gates_and_ends_unreached_steps() -> None:
    """Once a cancel arrives, open gates close by the system and unreached steps are cancelled,
    all at the moment of the advance."""
    sim = Sim(
        """
name: w
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"]}}
  - {id: b, tool: t.x, needs: [a]}
"""
    )
    sim.advance()
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="olga"), T0)
    sim.now += timedelta(minutes=7)
    sim.advance()
    g = sim.gate("a")
    assert (g.outcome, g.decided_by, g.decided_at) == ("cancel", ["system"], sim.now)
    assert ends(sim, "a") == ("cancelled", "run stopped", None, sim.now)
    assert ends(sim, "b") == ("cancelled", "not reached: the run was cancelled", None, sim.now)


def test_auto_mode_records_why_the_gate_approved_itself() -> None:
    """In auto mode a gate closes at once as approved by the system, with an audit entry."""
    sim = Sim(GATED % ("before", ""), approval_mode="auto")
    sim.now += timedelta(seconds=30)
    sim.advance()
    g = sim.gate("a")
    assert (g.outcome, g.decided_by, g.decided_at) == ("approve", ["system"], sim.now)
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=sim.now,
            kind="auto_approve",
            gate="a",
            action="approve",
            reason="run approval_mode is auto",
        )
    ]


def test_auto_approve_if_is_not_asked_at_an_on_failure_gate() -> None:
    """A failure always waits for people, whatever auto_approve_if says."""
    sim = gated("on_failure", ', auto_approve_if: "true"')
    assert sim.fail("a", "boom") == [Notify("a", "a", "opened")]
    assert sim.gate("a").open and sim.state.audit == []


def test_auto_approve_if_records_the_condition_that_held() -> None:
    """A condition that holds approves the gate and names itself in the audit."""
    sim = Sim(GATED % ("before", ', auto_approve_if: "input.small == null"'))
    sim.advance()
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=T0,
            kind="auto_approve",
            gate="a",
            action="approve",
            reason="auto_approve_if held: input.small == null",
        )
    ]


def test_auto_approve_if_error_is_recorded_and_left_to_people() -> None:
    """A condition that cannot be evaluated leaves the gate open and says why in the audit."""
    sim = Sim(GATED % ("before", ', auto_approve_if: "len(3)"'))
    sim.advance()
    assert sim.gate("a").open
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=T0,
            kind="auto_approve",
            gate="a",
            outcome="refused",
            reason="auto_approve_if not evaluated, the gate waits for people: "
            "len() failed: object of type 'int' has no len()",
        )
    ]


def test_advance_starts_work_unless_told_to_hold() -> None:
    """Without `hold` an advance starts every ready step."""
    sim = Sim("name: s\nsteps: [{id: a, tool: t.x}]")
    assert scheduler.advance(sim.state, sim.d, sim.ctx, T0) == [Invoke("a", 0, {})]


def test_references_see_the_run_facts() -> None:
    """`run.*` references read the run's ids, requester, pipeline and start time."""
    sim = Sim(
        """
name: facts
steps:
  - id: a
    tool: t.x
    with: {w: "${run.workflow_id}", r: "${run.run_id}", who: "${run.requester}",
           p: "${run.pipeline}", at: "${run.started_at}"}
"""
    )
    assert sim.advance() == [
        Invoke(
            "a",
            0,
            {"w": "wf-1", "r": "run-1", "who": "req", "p": "facts", "at": T0.isoformat()},
        )
    ]
    nobody = RunContext("wf-2", "run-2", "facts", T0.isoformat())
    assert nobody.scope(sim.state).run["requester"] is None


def test_scope_is_strict_unless_asked_to_be_lenient() -> None:
    """A step's inputs may not read a skipped step's output; the run's output reads it as null."""
    sim = Sim(
        """
name: l
steps:
  - {id: a, tool: t.x, if: "false"}
  - {id: b, tool: t.x, needs: [a], allow_skipped_needs: true, with: {x: "${steps.a.output}"}}
"""
    )
    sim.advance()
    assert sim.step("b").error == "${steps.a.output}: step 'a' has no output (it did not succeed)"
    assert sim.ctx.scope(sim.state, lenient=True).resolve("${steps.a.output}") is None
