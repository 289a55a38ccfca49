"""Edges of the rules that the scenario tests pass by: the archive chunk and the run's output,
a governed run's phases, and the exact words of refusals and failures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities.models import PlanResult
from tests.rules.sim import T0, Sim
from tests.rules.test_governed import (
    POLICY,
    decision,
    inp,
    planned,
    reviewing,
)
from workflows.language.policy import Policy, RiskRule, TierGate
from workflows.language.refs import Lazy, RefError, Scope, parse_ref
from workflows.models import AuditEntry, Decision, GateRefusal
from workflows.rules import decisions, governed, governed_view, lifecycle
from workflows.rules.governed import GovernedState
from workflows.rules.state import AUDIT_CHUNK, AUDIT_KEEP, GateRecord, RunData, StepRecord

SAGA = """
name: s
steps:
  - {id: a, tool: t.x}
output: {a: "${steps.a.output}", n: 1}
"""


# ---- lifecycle: the archive chunk and the output -------------------------------------------


def test_archive_chunk_hands_out_the_oldest_entries_once_with_the_chain() -> None:
    """Past the bound, the chunk names the run, its first and last entry, the previous chunk's
    hash, and carries the entries as JSON; the state marks them as being archived."""
    sim = Sim(SAGA)
    for i in range(AUDIT_KEEP + AUDIT_CHUNK - 1):
        sim.state.record(AuditEntry(at=T0, kind="reminder", reason=str(i)))
    assert lifecycle.archive_chunk(sim.state, "wf-1") is None
    sim.state.record(AuditEntry(at=T0, kind="reminder", reason="last"))
    chunk = lifecycle.archive_chunk(sim.state, "wf-1")
    assert chunk is not None
    assert (chunk.workflow_id, chunk.first_seq, chunk.last_seq, chunk.prev_sha256) == (
        "wf-1",
        1,
        AUDIT_CHUNK,
        None,
    )
    assert chunk.entries[0] == {**sim.state.audit[0].model_dump(mode="json")}
    assert chunk.entries[0]["at"] == "2026-01-01T00:00:00Z" and len(chunk.entries) == AUDIT_CHUNK
    assert sim.state.archiving == AUDIT_CHUNK
    assert lifecycle.archive_chunk(sim.state, "wf-1") is None, "one chunk at a time"
    lifecycle.archived(sim.state, 1, AUDIT_CHUNK, "p1", "h1")
    for i in range(AUDIT_CHUNK):
        sim.state.record(AuditEntry(at=T0, kind="reminder", reason=f"more {i}"))
    second = lifecycle.archive_chunk(sim.state, "wf-1")
    assert second is not None and second.prev_sha256 == "h1"
    assert (second.first_seq, second.last_seq) == (AUDIT_CHUNK + 1, 2 * AUDIT_CHUNK)


def test_resolve_output_leaves_a_stopped_run_alone_and_fails_on_a_bad_reference() -> None:
    """The output is resolved only for a run that did not stop; a reference that cannot be
    resolved stops it failed with the reference's error."""
    sim = Sim(SAGA)
    sim.advance()
    sim.succeed("a", {"v": 1})
    lifecycle.resolve_output(sim.state, sim.d, sim.ctx)
    assert sim.state.output == {"a": {"v": 1}, "n": 1} and sim.state.stop is None
    stopped = Sim(SAGA)
    stopped.state.stop = lifecycle.Stop(kind="cancelled", message="by op")
    lifecycle.resolve_output(stopped.state, stopped.d, stopped.ctx)
    assert stopped.state.output is None and stopped.state.stop.message == "by op"
    bad = Sim(SAGA.replace("${steps.a.output}", "${steps.a.output.missing}"))
    bad.advance()
    bad.succeed("a", {"v": 1})
    lifecycle.resolve_output(bad.state, bad.d, bad.ctx)
    assert bad.state.stop is not None and bad.state.stop.kind == "failed"
    assert bad.state.stop.message == "${steps.a.output.missing}: no field 'missing'"
    assert bad.state.output is None


# ---- the run's state ---------------------------------------------------------------------


def test_in_flight_counts_a_plan_out_for_its_check_but_not_one_back() -> None:
    """A unit planning with no plan yet is out; once its plan is back it is not."""
    state = RunData(steps={"p": StepRecord(id="p", phase="planning")}, started_at=T0)
    assert [u.id for u in state.in_flight()] == ["p"]
    state.steps["p"].plan = lifecycle.PlanRecord(errors=["x"])
    assert state.in_flight() == []


def test_unit_finds_items_by_index_and_nothing_past_them() -> None:
    """`each.1` is the second item; an index past the last, a non-number, or an index of a
    step without items names nothing."""
    items = [StepRecord(id=f"each.{i}", index=i) for i in range(2)]
    state = RunData(
        steps={"each": StepRecord(id="each", items=items), "plain": StepRecord(id="plain")},
        started_at=T0,
    )
    assert state.unit("each.1") is items[1] and state.unit("each") is state.steps["each"]
    for missing in ("each.2", "each.x", "plain.0", "ghost"):
        assert state.unit(missing) is None, missing


# ---- a governed run ----------------------------------------------------------------------


def test_enter_times_each_phase_and_records_the_move() -> None:
    """Leaving a phase adds the time spent in it (again on a second visit); closed phases are
    not timed; every move is in the audit with its reason."""
    st = GovernedState(started_at=T0, phase_started=T0)
    st.enter("review", T0 + timedelta(seconds=2), "tier 2")
    st.enter("plan", T0 + timedelta(seconds=5))
    st.enter("review", T0 + timedelta(seconds=6))
    st.enter("completed", T0 + timedelta(seconds=10))
    st.enter("failed", T0 + timedelta(seconds=30))
    assert st.durations_ms == {"plan": 3_000, "review": 7_000}
    assert (st.phase, st.phase_started) == ("failed", T0 + timedelta(seconds=30))
    assert [(e.kind, e.action, e.reason, e.seq) for e in st.audit] == [
        ("lifecycle", "phase:review", "tier 2", 1),
        ("lifecycle", "phase:plan", None, 2),
        ("lifecycle", "phase:review", None, 3),
        ("lifecycle", "phase:completed", None, 4),
        ("lifecycle", "phase:failed", None, 5),
    ]


def test_the_subject_carries_the_assessment_as_json() -> None:
    """The reviewed subject holds the assessment as JSON data (what the digest is taken of)."""
    st = planned({"read": "medium"})
    subject = governed.subject(st)
    assert subject["assessment"] == st.assessment.model_dump(mode="json")  # type: ignore[union-attr]
    assert all(isinstance(r, dict) for r in subject["assessment"]["reasons"])


def test_admit_words_its_refusals() -> None:
    """Each refusal says exactly what is wrong."""
    st = planned({"read": "medium"})
    found = governed.admit(st, inp(), decision("approve"), T0)
    assert isinstance(found, GateRefusal)
    assert found.message == "gate 'review' is not open (not open yet)"
    found = governed.admit(reviewing(), inp(), decision("modify", patch={"steps": []}), T0)
    assert isinstance(found, GateRefusal)
    assert found.message == 'modify a plan with {"plan": <merge patch of the plan>}'


def test_open_gate_needs_both_the_gate_and_its_tier() -> None:
    """A gate without the tier it follows is no open review."""
    st = reviewing()
    st.tier_gate = None
    assert governed.open_gate(st) is None


def test_amended_plan_of_a_decision_without_a_patch_is_none() -> None:
    assert governed.amended_plan(decision("approve")) is None
    assert governed.amended_plan(decision("modify", patch={"plan": {"a": 1}})) == {"a": 1}


def test_approval_keeps_the_tiers_stop_count() -> None:
    """`rejections_to_reject` of the tier is the gate's."""
    assert (
        governed.approval(
            TierGate(approvers=["role:x"], rejections_to_reject=2)
        ).rejections_to_reject
        == 2
    )


def test_open_review_is_round_zero() -> None:
    assert reviewing().gate.round == 0  # type: ignore[union-attr]


def test_assess_reads_the_request_and_the_context() -> None:
    """Policy rules see the run's request and context."""
    policy = POLICY.model_copy(
        update={
            "rules": [
                RiskRule(if_="request == 'deploy'", tier=2, reason="a deploy"),
                RiskRule(if_="context.n == 1", tier=3, reason="n is one"),
            ]
        }
    )
    st = planned({"read": "low"}, inp(policy))
    assert st.assessment is not None and st.assessment.tier == 3
    assert [r.detail for r in st.assessment.reasons if r.tier] == ["a deploy", "n is one"]


def test_apply_refuses_a_modify_whose_plan_came_back_empty() -> None:
    """A check that returned no plan (and no errors) is no valid amendment either; a modify
    never checked says so."""
    st = reviewing()
    d = decision("modify", patch={"plan": {"name": "q"}})
    refusal = governed.apply(st, inp(), d, T0, "update", PlanResult(definition=None, errors=[]))
    assert isinstance(refusal, GateRefusal) and refusal.message == "the amended plan is not valid: "
    refusal = governed.apply(st, inp(), d, T0, "update")
    assert isinstance(refusal, GateRefusal)
    assert refusal.message == "the amended plan is not valid: not checked"


def test_apply_takes_a_checked_plan_only_from_a_modify() -> None:
    """An approval that arrives with a checked plan does not replace the plan."""
    st = reviewing()
    other = PlanResult(definition={"name": "other", "steps": []}, risks={})
    assert governed.apply(st, inp(), decision("approve"), T0, "update", other) is None
    assert st.plan != other.definition and st.gate is not None and st.gate.outcome == "approve"


def test_a_modify_into_a_higher_tier_is_tallied_by_that_tiers_quorum() -> None:
    """An elder (also a peer) raising a plan to tier 3 votes for it, and the elders' quorum of
    two still waits for another."""
    st = reviewing({"read": "medium"})
    d = decision("modify", actor="ed", roles=["peer", "elder"], patch={"plan": {"name": "r"}})
    amended = PlanResult(definition={**st.plan, "name": "r"}, risks={"read": "high"})  # type: ignore[dict-item]
    assert governed.apply(st, inp(), d, T0, "update", amended) is None
    assert st.gate is not None and st.gate.open and [v.actor for v in st.gate.votes][-1] == "ed"


def test_a_modify_decided_by_the_policy_is_dated() -> None:
    """A plan amended down to tier 1 closes its review at that moment, by the modifier."""
    slow = POLICY.model_copy(update={"tier2": TierGate(approvers=["role:peer"], quorum=2)})
    st = reviewing({"read": "medium"}, inp(slow))
    d = decision("modify", patch={"plan": {"name": "safe"}})
    later = T0 + timedelta(minutes=3)
    amended = PlanResult(definition={**st.plan, "name": "safe"}, risks={"read": "low"})  # type: ignore[dict-item]
    assert governed.apply(st, inp(slow), d, later, "update", amended) is None
    assert st.gate is not None and (st.gate.outcome, st.gate.decided_at) == ("modify", later)


def test_awaiting_and_details_name_the_gates_approvers() -> None:
    """Who may decide comes from the gate's approvers, listed in the details with commas."""
    st = reviewing(
        {"read": "high"},
        inp(
            POLICY.model_copy(
                update={"tier3": TierGate(approvers=["role:elder", "user:eve"], quorum=2)}
            )
        ),
    )
    assert governed_view.awaiting(st) == ["role:elder", "user:eve"]
    assert governed_view.details(st, paused=True).splitlines() == [
        f"**paused** · governed, phase **plan**, tier 3 (score {st.assessment.score})",  # type: ignore[union-attr]
        "- review waits for role:elder, user:eve",
    ]


def test_status_of_a_governed_run_in_full() -> None:
    """Every field of the status: the pipeline shape, the cycle and the masked data."""
    st = reviewing({"read": "high"})
    st.phase, st.plan_source, st.plan_attempts = "review", "llm", 2
    st.plan_errors, st.decision, st.error = ["e1"], None, "none yet"
    st.child_workflow_id, st.child_state = "g--execute", "running"
    st.output = {"api_token": "t0k3n", "n": 1}
    status = governed_view.status(st, inp(), "g-1", "r-1", paused=False)
    assert (status.version, status.approval_mode, status.steps) == (1, "manual", [])
    assert status.started_at == T0 and status.revision == st.revision
    assert status.output == {"api_token": "***", "n": 1} and status.error == "none yet"
    assert status.requester is not None and status.requester.principal == "req"
    g = status.governed
    assert g is not None
    assert (g.phase, g.request, g.policy, g.plan_source, g.plan_attempts, g.plan_errors) == (
        "review",
        "deploy",
        "default",
        "llm",
        2,
        ["e1"],
    )
    assert g.plan == st.plan and g.decision is None
    assert (g.child_workflow_id, g.child_state, g.similar, g.durations_ms) == (
        "g--execute",
        "running",
        [],
        {},
    )
    assert g.assessment == st.assessment.model_dump(mode="json")  # type: ignore[union-attr]
    assert status.progress.total == 4 and status.open_gates[0].subject is not None
    assert status.open_gates[0].review == "Elders, look closely"


# ---- decisions ---------------------------------------------------------------------------


def test_apply_holds_the_requester_to_self_approval() -> None:
    """The requester is refused approving a gate that forbids self-approval, at apply too."""
    sim = Sim(
        """
name: g
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"], forbid_self_approval: true}}
"""
    )
    sim.advance()
    d = Decision(gate="a", action="approve", actor="req", roles=["ops"])
    refused = decisions.apply(sim.state, sim.d, d, sim.requester, T0, "update")
    assert isinstance(refused, GateRefusal) and refused.code == "self_approval"


# ---- references: the exact words ---------------------------------------------------------


def test_reference_refusals_and_formats_are_exact() -> None:
    """A reference's errors name it, and embedded objects are compact with their keys sorted."""
    with pytest.raises(RefError) as err:
        parse_ref("env.HOME")
    assert str(err.value) == (
        "malformed reference '${env.HOME}': must start with input, steps, run, secret, "
        "or (where they exist) item, index, previous, output, iteration"
    )
    assert parse_ref("input.X1234567").path == ("X1234567",), "a name is not an index"
    scope = Scope({"o": {"b": 2, "a": 1}}, {"s": {"x": 1}}, {}, {})
    assert scope.resolve("o=${input.o}") == 'o={"a":1,"b":2}'
    with pytest.raises(RefError) as err:
        scope.resolve("${steps.s.output.y}")
    assert str(err.value) == "${steps.s.output.y}: no field 'y'"
    lazy = Scope({}, {"big": None}, {}, {}, offloaded={"big": {"uri": "u"}})
    with pytest.raises(RefError) as err:
        lazy.resolve("x ${steps.big.output}")
    assert str(err.value) == "an output stored as an artifact cannot be embedded inside a string"
    with pytest.raises(RefError) as err:
        lazy.lookup("steps.big.output")
    assert str(err.value) == (
        "condition reads 'steps.big.output', an output stored as an artifact; "
        "conditions can only read outputs kept in history"
    )
    assert isinstance(lazy.value(parse_ref("steps.big.output")), Lazy)


def test_policy_defaults_are_the_documented_tiers() -> None:
    """The default policy sends tier 2 to one peer and tier 3 to two elders."""
    policy = Policy()
    assert policy.gate(2) == TierGate(approvers=["role:peer"], quorum=1)
    assert policy.gate(3) == TierGate(approvers=["role:elder"], quorum=2)


def test_a_gate_without_its_spec_is_not_shown_as_a_gate() -> None:
    """A unit holding a gate whose step no longer declares one shows no gate."""
    sim = Sim(SAGA)
    unit = sim.step("a")
    unit.gate = GateRecord(
        gate="a", step="a", stage="before", round=0, digest="d", opened_at=T0, approvers=[]
    )
    from workflows.rules import view

    assert view.step_view(unit, sim.d).gate is None
