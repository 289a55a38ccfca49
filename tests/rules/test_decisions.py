"""A decision arriving at a run: which gate it names, who is barred, the patch check it needs,
and the audit entry it leaves, accepted or refused."""

from __future__ import annotations

from typing import Any

from tests.rules.sim import T0, Sim
from workflows.models import AuditEntry, Decision, GateRefusal, GateSummary, Vote
from workflows.rules import decisions, votes
from workflows.rules.state import ChildGates, GateRecord

GATED = """
name: g
steps:
  - id: a
    tool: t.x
    with: {amount: 10, to: acme}
    approval: {stage: %s, approvers: ["role:ops"]%s}
  - {id: b, tool: t.x, needs: [a]}
"""


def gated(stage: str = "before", extra: str = "") -> Sim:
    sim = Sim(GATED % (stage, extra))
    sim.advance()
    return sim


def at_gate(stage: str, extra: str = "") -> Sim:
    """A run whose step `a` waits at its `stage` gate (having run, or failed, first)."""
    sim = gated(stage, extra)
    if stage == "after":
        sim.succeed("a", {"id": 7, "state": "new"})
    elif stage == "on_failure":
        sim.fail("a", "disk full")
    return sim


def decision(action: str, actor: str = "alice", **kw: Any) -> Decision:
    return Decision(gate="a", action=action, actor=actor, roles=kw.pop("roles", ["ops"]), **kw)  # type: ignore[arg-type]


def refusal(sim: Sim, d: Decision) -> GateRefusal:
    found = decisions.admit(sim.state, sim.d, d, sim.requester, sim.now)
    assert isinstance(found, GateRefusal), found
    return found


def summary(gate: str) -> GateSummary:
    return GateSummary(
        gate=gate,
        stage="before",
        round=0,
        approvers=["role:ops"],
        actions=["approve"],
        voted=[],
        digest="sha256:1",
        opened_at=T0,
    )


# ---- which gate ------------------------------------------------------------------------------


def test_find_gate_refuses_a_step_the_run_does_not_have() -> None:
    """A gate id naming no step is an unknown gate, named in the message."""
    sim = gated()
    assert decisions.find_gate(sim.state, sim.d, "nope") == GateRefusal(
        code="unknown_gate", message="run has no gate 'nope'"
    )


def test_find_gate_refuses_a_step_without_an_approval() -> None:
    """A step that declares no approval has no gate, even though the step exists."""
    sim = gated()
    assert decisions.find_gate(sim.state, sim.d, "b") == GateRefusal(
        code="unknown_gate", message="run has no gate 'b'"
    )


def test_find_gate_points_at_the_child_run_holding_the_gate() -> None:
    """A child run's gate is refused here with the child's workflow id, and only that gate."""
    sim = gated()
    sim.state.children["wf-1--c"] = ChildGates(
        step="a", workflow_id="wf-1--c", gates=[summary("y"), summary("x")]
    )
    assert decisions.find_gate(sim.state, sim.d, "x") == GateRefusal(
        code="unknown_gate",
        message="gate 'x' belongs to child run 'wf-1--c': decide it there",
    )
    sim.state.children["wf-1--c"].gates = [summary("x")]
    assert decisions.find_gate(sim.state, sim.d, "z") == GateRefusal(
        code="unknown_gate", message="run has no gate 'z'"
    )


def test_find_gate_refuses_a_gate_not_open_yet() -> None:
    """A declared gate that has not opened says so, with the step's state."""
    sim = Sim(GATED % ("after", ""))
    assert decisions.find_gate(sim.state, sim.d, "a") == GateRefusal(
        code="gate_not_open", message="gate 'a' is not open (not open yet); step is pending"
    )


def test_find_gate_refuses_a_decided_gate_with_its_outcome() -> None:
    """A decided gate names its outcome and what the step does now."""
    sim = gated()
    sim.vote("a", "approve")
    assert decisions.find_gate(sim.state, sim.d, "a") == GateRefusal(
        code="gate_not_open", message="gate 'a' is not open (approve); step is running"
    )


def test_find_gate_returns_the_step_its_gate_and_the_spec() -> None:
    """An open gate comes back with its step record, gate record and approval spec."""
    sim = gated()
    assert decisions.find_gate(sim.state, sim.d, "a") == (
        sim.step("a"),
        sim.gate("a"),
        sim.d.step("a").approval,
    )


# ---- who may cast ----------------------------------------------------------------------------


def test_admit_passes_the_requester_on_to_the_vote_rules() -> None:
    """The run's requester may not approve a gate that forbids self-approval."""
    sim = gated(extra=", forbid_self_approval: true")
    assert refusal(sim, decision("approve", actor="req")) == GateRefusal(
        code="self_approval",
        message="'req' requested this run and may not approve at gate 'a'",
    )
    assert isinstance(
        decisions.admit(sim.state, sim.d, decision("approve"), sim.requester, sim.now), tuple
    )


def test_admit_returns_the_refusal_of_the_vote_rules() -> None:
    """A principal the gate does not name is refused, with who they are and who may decide."""
    sim = gated()
    assert refusal(sim, decision("approve", actor="bob", roles=["dev"])) == GateRefusal(
        code="not_authorized",
        message="'bob' with roles ['dev'] may not decide gate 'a' (approvers: role:ops)",
    )


def test_admit_bars_whoever_voted_to_go_on_at_a_distinct_gate() -> None:
    """With distinct_from, an approver of the earlier gate may not approve this one."""
    sim = Sim(
        """
name: two
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"]}}
  - {id: b, tool: t.x, needs: [a], approval: {approvers: ["role:ops"], distinct_from: [a]}}
"""
    )
    sim.advance()
    sim.vote("a", "approve")
    sim.succeed("a")
    d = Decision(gate="b", action="approve", actor="alice", roles=["ops"])
    found = decisions.admit(sim.state, sim.d, d, sim.requester, sim.now)
    assert found == GateRefusal(
        code="separation_of_duties",
        message="'alice' voted at one of ['a'] and may not also approve at gate 'b'",
    )


def _vote(actor: str, action: str) -> Vote:
    return Vote(actor=actor, action=action, at=T0, digest="sha256:x")


def test_barred_unites_earlier_approvers_and_go_on_votes_of_every_named_gate() -> None:
    """Everyone who let any named gate go on is barred, from past rounds and the current gate;
    those who only stopped, and names that are no step, bar no one."""
    sim = Sim(
        """
name: three
steps:
  - {id: a, tool: t.x, approval: {approvers: ["role:ops"]}}
  - {id: b, tool: t.x, approval: {approvers: ["role:ops"]}}
  - {id: c, tool: t.x, approval: {approvers: ["role:ops"], distinct_from: [a, ghost, b]}}
"""
    )
    sim.step("a").approvers_seen = ["ann"]
    sim.step("b").approvers_seen = ["bea"]
    sim.step("b").gate = GateRecord(
        gate="b",
        step="b",
        stage="before",
        round=1,
        digest="sha256:x",
        opened_at=T0,
        approvers=["role:ops"],
        votes=[_vote("ben", "skip"), _vote("rex", "reject"), _vote("cal", "cancel")],
    )
    spec = sim.d.step("c").approval
    assert spec is not None
    assert decisions.barred(sim.state, spec) == {"ann", "bea", "ben"}


# ---- the check a patch needs -----------------------------------------------------------------


def test_check_call_checks_a_before_modify_as_the_patched_input() -> None:
    """A modify at a before gate is checked as the tool's input, merged over the step's args."""
    sim = at_gate("before")
    d = decision("modify", patch={"amount": 5, "to": None})
    admitted = decisions.admit(sim.state, sim.d, d, sim.requester, sim.now)
    call = decisions.check_call(sim.d, admitted, d)
    assert call is not None
    assert (call.value, call.tool, call.part, call.where) == (
        {"amount": 5},
        "t.x",
        "input",
        "patched input",
    )


def test_check_call_checks_a_retry_as_the_patched_input() -> None:
    """A retry's patch is checked against the tool's input, named by its pinned version."""
    sim = at_gate("after")
    sim.d.steps[0].resolved_tool = "t.x@2"
    d = decision("retry", patch={"amount": 11})
    call = decisions.check_call(
        sim.d, decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), d
    )
    assert call is not None
    assert call.model_dump() == {
        "value": {"amount": 11, "to": "acme"},
        "tool": "t.x@2",
        "part": "input",
        "json_schema": None,
        "where": "patched input",
        "before": None,
        "slots": [],
        "secrets": {},
    }


SECRET_STEP = """
name: s
secrets: {T: {hosts: [api.example.com]}, U: null}
steps:
  - id: a
    tool: t.x
    with: {url: "https://api.example.com/", auth: "Bearer ${secret.T}", key: "${secret.U}"}
    approval: {approvers: ["role:ops"]}
"""


def test_check_call_of_a_secret_step_carries_its_slots_and_bindings() -> None:
    """A patch of a step that holds secrets is checked with the input before the patch, the
    secret slots and each secret's binding (or none), so the check can see a secret moved."""
    sim = Sim(SECRET_STEP)
    sim.advance()
    d = decision("modify", patch={"url": "https://elsewhere.example/"})
    call = decisions.check_call(
        sim.d, decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), d
    )
    assert call is not None
    assert call.before == {
        "url": "https://api.example.com/",
        "auth": "Bearer ${secret.T}",
        "key": "${secret.U}",
    }
    assert call.value is not None and call.value["url"] == "https://elsewhere.example/"
    assert sorted(s.path[0] for s in call.slots) == ["auth", "key"]
    assert call.secrets == {"T": sim.d.binding("T"), "U": None}
    assert call.secrets["T"] is not None and call.secrets["T"].hosts == ["api.example.com"]


def test_check_call_checks_an_after_modify_as_the_patched_output() -> None:
    """A modify after the call is checked as the tool's output, merged over what the gate shows."""
    sim = at_gate("after")
    d = decision("modify", patch={"state": "done"})
    call = decisions.check_call(
        sim.d, decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), d
    )
    assert call is not None
    assert (call.value, call.tool, call.part, call.where) == (
        {"id": 7, "state": "done"},
        "t.x",
        "output",
        "patched output",
    )


def test_check_call_checks_a_skip_substitute_as_the_output() -> None:
    """The substitute output of a skip at an on_failure gate is checked as the tool's output."""
    sim = at_gate("on_failure")
    d = decision("skip", patch={"id": 0})
    call = decisions.check_call(
        sim.d, decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), d
    )
    assert call is not None
    assert (call.value, call.tool, call.part, call.where) == (
        {"id": 0},
        "t.x",
        "output",
        "patched output",
    )


def test_check_call_needs_nothing_without_an_object_patch_or_an_admitted_gate() -> None:
    """No patch, a patch that is not an object, or a refused decision: nothing to check."""
    sim = at_gate("after")
    plain = decision("approve")
    admitted = decisions.admit(sim.state, sim.d, plain, sim.requester, sim.now)
    assert isinstance(admitted, tuple)
    assert decisions.check_call(sim.d, admitted, plain) is None
    listy = decision("retry", patch=[1])
    assert decisions.check_call(sim.d, admitted, listy) is None
    refused = GateRefusal(code="unknown_gate", message="x")
    assert decisions.check_call(sim.d, refused, decision("retry", patch={"a": 1})) is None


def test_check_call_leaves_a_child_pipeline_to_its_own_checks() -> None:
    """A child pipeline's patched input is checked when it starts; its output has no shape."""
    text = """
name: p
steps:
  - id: a
    pipeline: child
    with: {n: 1}
    approval: {stage: %s, approvers: ["role:ops"]}
"""
    sim = Sim(text % "before")
    sim.advance()
    d = decision("modify", patch={"n": 2})
    assert (
        decisions.check_call(sim.d, decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), d)
        is None
    )
    sim = Sim(text % "after")
    sim.advance()
    sim.succeed("a", {"out": 1})
    for d in (decision("modify", patch={"out": 2}), decision("retry", patch={"n": 3})):
        assert (
            decisions.check_call(
                sim.d, decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), d
            )
            is None
        )


def test_bad_patch_names_the_action_and_every_issue() -> None:
    """A patch the tool would not accept is refused with each issue, in order."""
    refusal = decisions.bad_patch(decision("retry"), ["amount: not an int", "to: required"])
    assert refusal == GateRefusal(
        code="bad_patch",
        message="retry refused: the patch would leave the step invalid: "
        "amount: not an int; to: required",
    )


# ---- the audit trail -------------------------------------------------------------------------


def test_cast_records_the_vote_and_an_accepted_entry_with_a_masked_patch() -> None:
    """An accepted decision becomes a vote and one audit entry with every field; a secret in the
    patch is masked in the audit."""
    sim = at_gate("after", ", quorum: 2")
    digest = sim.gate("a").digest
    d = decision(
        "retry",
        comment="once more",
        patch={"amount": 3, "api_key": "k-123"},
        digest=digest,
        roles=["ops", "dev"],
    )
    assert isinstance(decisions.apply(sim.state, sim.d, d, sim.requester, T0, "signal"), tuple)
    assert [(v.actor, v.action, v.patch) for v in sim.gate("a").votes] == [
        ("alice", "retry", {"amount": 3, "api_key": "k-123"})
    ]
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=T0,
            kind="decision",
            gate="a",
            actor="alice",
            roles=["ops", "dev"],
            action="retry",
            comment="once more",
            patch={"amount": 3, "api_key": "***"},
            digest=digest,
            outcome="accepted",
            reason=None,
            via="signal",
        )
    ]


def test_refuse_records_the_code_and_message_as_the_reason() -> None:
    """A refused decision leaves an entry naming why, and no vote."""
    sim = gated()
    d = decision("approve", actor="bob", roles=[], comment="pls", patch={"token": "t"})
    decisions.refuse(sim.state, d, refusal(sim, d), T0, "update")
    assert sim.gate("a").votes == []
    assert sim.state.audit == [
        AuditEntry(
            seq=1,
            at=T0,
            kind="decision",
            gate="a",
            actor="bob",
            roles=[],
            action="approve",
            comment="pls",
            patch={"token": "***"},
            digest=None,
            outcome="refused",
            reason="not_authorized: 'bob' with roles [] may not decide gate 'a' "
            "(approvers: role:ops)",
            via="update",
        )
    ]


def test_cast_decides_the_gate_when_the_vote_reaches_the_quorum() -> None:
    """The deciding vote closes the gate; the step moves on at the next advance."""
    sim = gated()
    d = decision("approve")
    assert isinstance(decisions.apply(sim.state, sim.d, d, sim.requester, T0, "update"), tuple)
    assert sim.gate("a").outcome == "approve" and sim.gate("a").decided_by == ["alice"]
    assert votes.live(sim.gate("a"))[0].digest == sim.gate("a").digest


def test_apply_admits_again_so_a_twin_decision_in_one_task_is_refused() -> None:
    """Two identical updates validated in one workflow task both pass their validators; applied
    one after the other, the second is refused (already voted), and as an update leaves no
    audit entry, while a refused signal is recorded."""
    sim = at_gate("before", ", quorum: 2")
    d = decision("approve")
    assert isinstance(decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), tuple)
    assert isinstance(decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), tuple)
    assert isinstance(decisions.apply(sim.state, sim.d, d, sim.requester, T0, "update"), tuple)
    twin = decisions.apply(sim.state, sim.d, d, sim.requester, T0, "update")
    assert isinstance(twin, GateRefusal) and twin.code == "already_voted"
    assert [e.outcome for e in sim.state.audit] == ["accepted"]
    again = decisions.apply(sim.state, sim.d, d, sim.requester, T0, "signal")
    assert isinstance(again, GateRefusal) and again.code == "already_voted"
    assert [e.outcome for e in sim.state.audit] == ["accepted", "refused"]
    assert len(sim.gate("a").votes) == 1


def test_apply_refuses_a_patch_its_check_found_invalid() -> None:
    """Issues found by the patch's check turn an admissible decision into bad_patch: no vote."""
    sim = at_gate("before")
    d = decision("modify", patch={"amount": "x"})
    refused = decisions.apply(
        sim.state, sim.d, d, sim.requester, T0, "signal", ["amount: not an int"]
    )
    assert isinstance(refused, GateRefusal) and refused.code == "bad_patch"
    assert "amount: not an int" in refused.message
    assert sim.gate("a").votes == [] and sim.state.audit[-1].outcome == "refused"
