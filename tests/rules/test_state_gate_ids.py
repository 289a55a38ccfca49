"""What a gate id names in a run's state: a step's gate, an item's, or an agent call's
(`<step>.call-<n>`), and nothing for an id that names no open record."""

from __future__ import annotations

from tests.rules.sim import T0
from workflows.rules.agent_state import AgentCall, AgentRecord
from workflows.rules.state import GateRecord, RunData, StepRecord


def _gate(gate: str, step: str) -> GateRecord:
    return GateRecord(
        gate=gate, step=step, stage="before", round=0, digest="sha256:x", opened_at=T0, approvers=[]
    )


def _call(n: int, gated: bool) -> AgentCall:
    name = f"agent.call-{n}"
    return AgentCall(
        n=n,
        name=name,
        turn=1,
        call_id=f"c{n}",
        function="read",
        gate=_gate(name, "agent") if gated else None,
    )


def _state() -> RunData:
    items = [StepRecord(id="each.0"), StepRecord(id="each.1", gate=_gate("each.1", "each"))]
    agent = StepRecord(
        id="agent",
        phase="agent",
        gate=_gate("agent", "agent"),
        agent=AgentRecord(calls=[_call(1, True), _call(2, False), _call(3, True)]),
    )
    return RunData(
        steps={
            "a": StepRecord(id="a", gate=_gate("a", "a")),
            "plain": StepRecord(id="plain"),
            "each": StepRecord(id="each", items=items),
            "agent": agent,
        },
        started_at=T0,
    )


def test_a_step_or_item_gate_id_names_its_unit_and_gate() -> None:
    """`a` is step a's gate, `each.1` the second item's; a unit without a gate, or no unit, is none."""
    state = _state()
    found = state.gate("a")
    assert found is not None and found[0].id == "a" and found[1].gate == "a"
    item = state.gate("each.1")
    assert item is not None and item[0].id == "each.1" and item[1].gate == "each.1"
    assert state.gate("plain") is None
    assert state.gate("each.0") is None
    assert state.gate("each.2") is None
    assert state.gate("nope") is None


def test_a_call_gate_id_names_the_agent_step_and_that_call_gate() -> None:
    """`agent.call-3` is the third call's gate, with the agent step as its unit; the step's own
    gate stays `agent`."""
    state = _state()
    third = state.gate("agent.call-3")
    assert third is not None and third[0].id == "agent" and third[1].gate == "agent.call-3"
    first = state.gate("agent.call-1")
    assert first is not None and first[1].gate == "agent.call-1"
    own = state.gate("agent")
    assert own is not None and own[1].gate == "agent"


def test_a_call_gate_id_that_names_no_gated_call_is_none() -> None:
    """A call without a gate, a number past the calls or below one, a non-number, a step that is
    no agent, or no step at all: nothing."""
    state = _state()
    for gate_id in (
        "agent.call-2",
        "agent.call-4",
        "agent.call-0",
        "agent.call-",
        "agent.call-x",
        "agent.call--1",
        "a.call-1",
        "nope.call-1",
        "call-1",
    ):
        assert state.gate(gate_id) is None, gate_id
