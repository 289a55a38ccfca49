"""Decisions at an agent call's gate (workflows/rules/decisions.py): which call gate a decision
names, what a patch there may change of the arguments the step fixes, and the check it needs."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.rules.agent_sim import READ, RESTART, AgentSim, agent_def
from workflows.models import Decision, GateRefusal
from workflows.rules import decisions
from workflows.rules.state import GateRecord, StepRecord

FIXED = (
    "{tool: ops.restart, resolved_tool: ops.restart@1.0.0, risk: high, parameters: "
    '{type: object}, with: {mode: graceful, zone: eu}, approval: {approvers: ["role:ops"]}}'
)
SECRET = (
    "{tool: ops.restart, resolved_tool: ops.restart@1.0.0, risk: high, parameters: "
    '{type: object}, with: {mode: graceful, auth: "Bearer ${secret.T}"}, '
    'approval: {approvers: ["role:ops"]}}'
)


def gated(*calls: tuple[str, Any], text: str | None = None) -> AgentSim:
    """An agent run whose calls each wait at their gate."""
    sim = AgentSim(text or agent_def(), {"service": "api"})
    sim.advance()
    sim.reply(*calls)
    sim.check({c.n: "high" for c in sim.checks()[-1].check.calls})
    return sim


def modify(arguments: Any, gate: str = "triage.call-1") -> Decision:
    return Decision(
        gate=gate, action="modify", actor="alice", roles=["ops"], patch={"arguments": arguments}
    )


def admitted(sim: AgentSim, d: Decision) -> tuple[StepRecord, GateRecord, Any]:
    found = decisions.admit(sim.state, sim.d, d, sim.requester, sim.now)
    assert isinstance(found, tuple), found
    return found


def test_find_gate_returns_the_waiting_call_its_gate_and_its_rules() -> None:
    """A call gate that waits is found with its step and the approval its tool entry gives."""
    sim = gated(("ops_restart", {"service": "api"}))
    found = decisions.find_gate(sim.state, sim.d, "triage.call-1")
    assert isinstance(found, tuple)
    step, gate, spec = found
    assert (step.id, gate.gate, gate.tool, spec.approvers) == (
        "triage",
        "triage.call-1",
        "ops.restart@1.0.0",
        ["role:ops"],
    )


def test_find_gate_refuses_a_call_gate_the_run_does_not_have() -> None:
    """A call number with no gate is unknown_gate, naming the gate asked for."""
    sim = gated(("ops_restart", {"service": "api"}), ("ops_read", {"service": "a"}))
    for gate in ("triage.call-9", "triage.call-2"):
        found = decisions.find_gate(sim.state, sim.d, gate)
        assert isinstance(found, GateRefusal)
        assert (found.code, found.message) == ("unknown_gate", f"run has no gate {gate!r}")


def test_find_gate_refuses_a_decided_call_gate_with_its_outcome() -> None:
    """Once decided, a call gate is not open, and the refusal says how it was decided."""
    sim = gated(("ops_restart", {"service": "api"}))
    assert sim.vote("triage.call-1", "reject") is None
    found = decisions.find_gate(sim.state, sim.d, "triage.call-1")
    assert isinstance(found, GateRefusal)
    assert (found.code, found.message) == (
        "gate_not_open",
        "gate 'triage.call-1' is not open (reject)",
    )


def test_fixed_kept_names_every_fixed_argument_a_patch_changes() -> None:
    """Each fixed argument the patch changes is named, in order; a fixed argument patched to
    its own value, or an argument the step does not fix, is no change."""
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, FIXED))
    step, gate, _ = admitted(sim, modify({"service": "db"}))
    d = modify({"zone": "us", "mode": "hard", "service": "db"})
    found = decisions.fixed_kept(step, gate, d)
    assert found is not None
    assert (found.code, found.message) == (
        "bad_patch",
        "the step fixes arguments.mode, arguments.zone of calls to ops.restart@1.0.0: "
        "a patch cannot change them",
    )
    assert decisions.fixed_kept(step, gate, modify({"mode": "graceful", "service": "db"})) is None


def test_fixed_kept_has_nothing_to_say_of_a_patch_without_arguments() -> None:
    """A patch that is no object of arguments changes no fixed argument (the vote rules refuse
    its shape)."""
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, FIXED))
    step, gate, _ = admitted(sim, modify({"service": "db"}))
    for patch in (None, ["mode"], {"arguments": ["mode"]}, {"mode": "hard"}):
        d = Decision(gate="triage.call-1", action="modify", actor="a", roles=["ops"], patch=patch)
        assert decisions.fixed_kept(step, gate, d) is None


def test_fixed_kept_of_a_step_without_a_loop_record_fixes_nothing() -> None:
    """A step that holds no agent record fixes no argument, whatever the patch."""
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, FIXED))
    step, gate, _ = admitted(sim, modify({"service": "db"}))
    bare = dataclasses.replace(step, agent=None)
    assert decisions.fixed_kept(bare, gate, modify({"mode": "hard"})) is None


def test_admit_refuses_a_patch_of_a_fixed_argument_and_passes_the_rest() -> None:
    """Admission refuses a call gate's patch that changes a fixed argument and admits one that
    leaves it alone."""
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, FIXED))
    found = decisions.admit(sim.state, sim.d, modify({"zone": "us"}), sim.requester, sim.now)
    assert isinstance(found, GateRefusal) and found.code == "bad_patch"
    assert isinstance(
        decisions.admit(sim.state, sim.d, modify({"zone": "eu"}), None, sim.now), tuple
    )


def test_check_call_at_a_call_gate_checks_the_arguments_as_they_would_run() -> None:
    """A modify at a call gate is checked as its tool's input: the call's arguments with the
    patch merged, where `arguments`; a step holding no secret sends no slots or bindings."""
    sim = gated(("ops_restart", {"service": "api", "force": True}), text=agent_def(READ, FIXED))
    d = modify({"service": "db", "force": None})
    check = decisions.check_call(sim.d, admitted(sim, d), d)
    assert check is not None
    assert check.model_dump() == {
        "value": {"service": "db", "mode": "graceful", "zone": "eu"},
        "tool": "ops.restart@1.0.0",
        "part": "input",
        "json_schema": None,
        "where": "arguments",
        "before": None,
        "slots": [],
        "secrets": {},
    }


def test_check_call_at_a_call_gate_of_a_secret_tool_carries_its_slots() -> None:
    """When the tool entry's fixed arguments hold a secret, the check gets the arguments before
    the patch, the secret's slots and its binding, so a patch cannot send it elsewhere."""
    text = "secrets: {T: {hosts: [ops.example.com]}}\n" + agent_def(READ, SECRET)
    sim = gated(("ops_restart", {"service": "api"}), text=text)
    before = sim.call(1).arguments
    assert before == {"service": "api", "mode": "graceful", "auth": "Bearer ${secret.T}"}
    d = modify({"service": "db"})
    check = decisions.check_call(sim.d, admitted(sim, d), d)
    assert check is not None
    assert (check.tool, check.where, check.before) == ("ops.restart@1.0.0", "arguments", before)
    assert check.value == {**before, "service": "db"}
    assert [s.path for s in check.slots] == [["auth"]]
    assert check.secrets == {"T": sim.d.binding("T")} and check.secrets["T"] is not None


def test_a_call_gate_of_another_tool_fixes_nothing_of_the_first() -> None:
    """The fixed arguments are the called tool's own: another tool's call may set them freely."""
    other = RESTART.replace("ops.restart", "ops.stop")
    sim = gated(("ops_stop", {"service": "api"}), text=agent_def(READ, FIXED, other))
    d = modify({"mode": "hard", "zone": "us"})
    assert isinstance(decisions.admit(sim.state, sim.d, d, sim.requester, sim.now), tuple)
    check = decisions.check_call(sim.d, admitted(sim, d), d)
    assert check is not None and check.value == {"service": "api", "mode": "hard", "zone": "us"}
