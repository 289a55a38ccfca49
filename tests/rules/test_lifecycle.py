"""A run's life around its steps: lifecycle requests, child gates, audit chunks, compensation,
and the close."""

from __future__ import annotations

from tests.rules.sim import T0, Sim
from workflows.contract import RunState, StepState
from workflows.models import AuditEntry, CompensationView, GateSummary, LifecycleInput
from workflows.rules import lifecycle
from workflows.rules.state import AUDIT_CHUNK, AUDIT_KEEP, RunData, Stop

SAGA = """
name: saga
steps:
  - {id: a, tool: t.x, compensate: {tool: t.undo, with: {id: "${steps.a.output.id}"}}}
  - {id: b, tool: t.x, needs: [a]}
  - {id: c, tool: t.x, needs: [a], compensate: {tool: t.undo}}
  - {id: d, tool: t.x, needs: [b, c]}
"""


def test_pause_resume_and_cancel_record_who_and_why() -> None:
    """Each lifecycle request lands in the audit with its actor and reason, once."""
    sim = Sim(SAGA)
    by = LifecycleInput(actor="olga", reason="maintenance")
    assert lifecycle.pause(sim.state, by, T0) and sim.state.paused
    assert not lifecycle.pause(sim.state, by, T0)
    assert lifecycle.resume(sim.state, by, T0) and not sim.state.paused
    assert not lifecycle.resume(sim.state, by, T0)
    assert lifecycle.request_cancel(sim.state, by, T0)
    assert not lifecycle.request_cancel(sim.state, by, T0)
    assert not lifecycle.pause(sim.state, by, T0)
    assert [(e.action, e.actor, e.reason, e.via) for e in sim.state.audit] == [
        ("pause", "olga", "maintenance", "signal"),
        ("resume", "olga", "maintenance", "signal"),
        ("cancel", "olga", "maintenance", "signal"),
    ]
    assert [e.seq for e in sim.state.audit] == [1, 2, 3]


def test_a_temporal_cancel_is_recorded_as_such() -> None:
    """A cancel request with no actor says it came from Temporal."""
    sim = Sim(SAGA)
    assert lifecycle.request_cancel(sim.state, None, T0, "system")
    assert (
        sim.state.stop is not None
        and sim.state.stop.message == "run cancelled by a Temporal cancel request"
    )
    assert sim.state.audit[-1].via == "system"


def test_cancel_overrides_a_failure_in_progress_but_not_a_close() -> None:
    """A run that is failing can still be cancelled; a closed one cannot."""
    sim = Sim(SAGA)
    sim.state.stop = lifecycle.Stop(kind="failed", message="x")
    assert lifecycle.request_cancel(sim.state, None, T0)
    assert sim.state.stop.kind == "cancelled"
    sim.state.closed = RunState.CANCELLED
    sim.state.stop = None
    assert not lifecycle.request_cancel(sim.state, None, T0)


def test_refuse_start_fails_the_run_before_any_step() -> None:
    """A scheduled run whose owner lost the right to start it runs nothing."""
    sim = Sim(SAGA)
    lifecycle.refuse_start(sim.state, "schedule 's': 'bob' may no longer start this run", T0)
    assert sim.advance() == []
    assert sim.finished and set(sim.states().values()) == {"skipped"}
    assert sim.state.audit[-1].outcome == "refused"


def test_child_gates_are_kept_while_the_step_runs() -> None:
    """A child's open gates are shown on the parent until it reports none or its step returns."""
    sim = Sim(SAGA)
    sim.advance()
    g = GateSummary(
        gate="x",
        stage="before",
        round=0,
        approvers=["role:ops"],
        actions=["approve"],
        voted=[],
        digest="sha256:1",
        opened_at=T0,
    )
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [g])
    assert sim.state.children["wf-1--a"].gates == [g] and sim.state.children["wf-1--a"].step == "a"
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [])
    assert sim.state.children == {}
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [g])
    sim.succeed("a")
    assert sim.state.children == {}
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [g])
    assert sim.state.children == {}, "a step no longer running has no child to report"


def test_audit_moves_out_in_chunks_and_keeps_the_chain() -> None:
    """Past its bound the oldest chunk is handed out once; when stored, it leaves the state and
    its reference names the previous chunk's hash."""
    sim = Sim(SAGA)
    for i in range(AUDIT_KEEP + AUDIT_CHUNK - 1):
        sim.state.record(AuditEntry(at=T0, kind="reminder", reason=str(i)))
    assert sim.state.archive_due() == []
    sim.state.record(AuditEntry(at=T0, kind="reminder"))
    chunk = sim.state.archive_due()
    assert [e.seq for e in chunk] == list(range(1, AUDIT_CHUNK + 1))
    sim.state.archiving = len(chunk)
    assert sim.state.archive_due() == [], "one chunk at a time"
    lifecycle.archived(sim.state, 1, AUDIT_CHUNK, "wf/audit/1.json", "h1")
    assert sim.state.audit[0].seq == AUDIT_CHUNK + 1 and sim.state.archiving == 0
    assert sim.state.audit_total == AUDIT_KEEP + AUDIT_CHUNK
    lifecycle.archived(sim.state, 201, 400, "wf/audit/2.json", "h2")
    assert [(a.sha256, a.prev_sha256) for a in sim.state.archives] == [("h1", None), ("h2", "h1")]


def test_compensation_runs_last_completed_first_and_is_recorded() -> None:
    """Succeeded steps with a compensation are undone newest first; each outcome is kept."""
    sim = Sim(SAGA)
    sim.advance()
    sim.succeed("a", {"id": 1})
    sim.succeed("c")
    sim.succeed("b")
    assert [u.id for u, _ in lifecycle.compensations(sim.state, sim.d)] == ["c", "a"]
    lifecycle.compensated(sim.step("c"), None, T0)
    lifecycle.compensated(sim.step("a"), "undo failed: 500", T0)
    assert sim.step("c").state == StepState.COMPENSATED
    assert sim.step("a").state == StepState.SUCCEEDED
    assert (
        sim.step("a").compensation is not None
        and sim.step("a").compensation.error == "undo failed: 500"
    )


def test_close_names_failed_compensations_in_the_failure() -> None:
    """A failed run's error lists every compensation that failed too."""
    sim = Sim(SAGA)
    sim.advance()
    sim.succeed("a", {"id": 1})
    sim.fail("b", "boom")
    lifecycle.compensated(sim.step("a"), "undo failed: 500", T0)
    assert lifecycle.close(sim.state, T0) == RunState.FAILED
    assert (
        sim.state.error
        == "step 'b' failed: boom; compensation of step 'a' failed: undo failed: 500"
    )
    assert sim.state.closed == RunState.FAILED


def test_close_of_a_complete_and_of_a_cancelled_run() -> None:
    """Without a stop the run completed; a cancel closes it as cancelled with its message."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    sim.advance()
    sim.succeed("a")
    assert lifecycle.close(sim.state, T0) == RunState.COMPLETED and sim.state.error is None
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="x"), T0)
    assert lifecycle.close(sim.state, T0) == RunState.CANCELLED
    assert sim.state.error == "run cancelled by x"


def test_refuse_start_records_the_refusal_and_its_reason() -> None:
    """The refusal stops the run as failed and leaves one refused lifecycle entry with why."""
    sim = Sim(SAGA)
    lifecycle.refuse_start(sim.state, "owner lost operator", T0)
    assert sim.state.stop == Stop(kind="failed", message="owner lost operator")
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=T0,
            kind="lifecycle",
            action="refuse_start",
            outcome="refused",
            reason="owner lost operator",
            via="system",
        )
    ]


def test_cancel_signal_without_an_actor_names_no_one() -> None:
    """A cancel signal that names nobody says so, and the stop has no author."""
    sim = Sim(SAGA)
    assert lifecycle.request_cancel(sim.state, None, T0)
    assert sim.state.stop == Stop(kind="cancelled", message="run cancelled by an unnamed actor")
    assert (sim.state.audit[-1].actor, sim.state.audit[-1].via) == (None, "signal")


def test_cancel_keeps_who_asked_as_the_stop_author() -> None:
    """A named cancel records its actor on the stop and on the audit entry."""
    sim = Sim(SAGA)
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="olga"), T0, "system")
    assert sim.state.stop == Stop(kind="cancelled", message="run cancelled by olga", by="olga")
    assert sim.state.audit[-1].via == "system"


def test_paused_and_resumed_state_survives_continue_as_new() -> None:
    """After pause and resume the state is still valid data a new run can be started with."""
    sim = Sim(SAGA)
    lifecycle.pause(sim.state, None, T0)
    lifecycle.resume(sim.state, None, T0)
    carried = RunData.model_validate(sim.state.model_dump(mode="json"))
    assert carried.paused is False and carried == sim.state
    assert [(e.action, e.actor, e.reason, e.via) for e in carried.audit] == [
        ("pause", None, None, "signal"),
        ("resume", None, None, "signal"),
    ]


def test_a_child_that_reports_no_gates_first_changes_nothing() -> None:
    """An empty report from a child the parent has not heard from is no error."""
    sim = Sim(SAGA)
    sim.advance()
    lifecycle.child_gates(sim.state, "a", "wf-1--a", [])
    assert sim.state.children == {}


def test_a_compensation_that_succeeds_is_recorded_with_its_time() -> None:
    """A successful undo marks the step compensated and keeps when it happened."""
    sim = Sim(SAGA)
    sim.advance()
    sim.succeed("a", {"id": 1})
    lifecycle.compensated(sim.step("a"), None, T0)
    assert sim.step("a").compensation == CompensationView(state="succeeded", at=T0)
    assert sim.step("a").state == StepState.COMPENSATED
