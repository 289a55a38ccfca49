"""Generated agent loops: turns of calls of every kind (run unasked, gated, denied, refused),
their replies, checks, results and decisions delivered in random order, with grants, pauses and
holds. Whatever the order: no turn is asked while a call of an earlier turn is undecided or out,
nothing refused ever runs, a gated call runs with exactly what its gate approved, each call runs
at most once, and every loop ends."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rules.agent_sim import AgentSim, agent_def
from workflows.agent_models import GrantSpec
from workflows.rules.turn import AskModel, CallTool

CALLS = {
    "read": ("ops_read", {"service": "a"}),
    "restart": ("ops_restart", {"service": "a", "mode": "hard"}),
    "page": ("ops_page", {"service": "a"}),
    "bogus": ("shell_run", {"argv": ["rm"]}),
    "bad": ("ops_read", {"service": 1}),
}

turns = st.lists(
    st.lists(st.sampled_from(sorted(CALLS)), min_size=0, max_size=4), min_size=1, max_size=4
)


def _actions(sim: AgentSim) -> list[tuple[str, int]]:
    rec = sim.rec
    found: list[tuple[str, int]] = []
    if rec.asking and rec.reply is None:
        found.append(("reply", 0))
    if rec.checking and rec.checked is None:
        found.append(("check", 0))
    if (rec.storing or rec.writing) and rec.stored is None:
        found.append(("stored", 0))
    for c in rec.calls:
        if c.out:
            found += [("done", c.n), ("fail", c.n)]
        if c.gate is not None and c.gate.open:
            found += [(a, c.n) for a in ("approve", "grant", "modify", "reject")]
    found += [("pause", 0), ("hold", 0)]
    return found


def _check_new(sim: AgentSim, new: list[Any], ran: dict[int, dict[str, Any]]) -> None:
    for effect in new:
        if isinstance(effect, AskModel):
            earlier = [c for c in sim.rec.calls if c.turn < effect.turn]
            assert all(c.final for c in earlier), "a turn was asked with a call undecided or out"
        if isinstance(effect, CallTool):
            call = sim.call(effect.n)
            assert effect.n not in ran, "a call ran twice"
            assert call.decision in ("auto", "approve", "granted")
            if call.decision == "approve":
                assert call.gate is not None and call.gate.outcome in ("approve", "modify")
                assert effect.args == call.gate.subject["arguments"]
            ran[effect.n] = effect.args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=turns, data=st.data())
def test_no_turn_proceeds_while_a_call_of_the_turn_before_is_undecided(
    script: list[list[str]], data: st.DataObject
) -> None:
    """Random loops, events in random order: the loop's invariants hold at every step and it
    always ends with the step final."""
    sim = AgentSim(agent_def(max_turns=10, max_tool_errors=100), {"service": "api"})
    sim.advance()
    ran: dict[int, dict[str, Any]] = {}
    for _ in range(300):
        if sim.finished:
            break
        action, n = data.draw(st.sampled_from(_actions(sim)))
        before = len(sim.effects)
        if action == "reply":
            turn = sim.rec.turn
            if turn <= len(script) and script[turn - 1]:
                sim.reply(*(CALLS[k] for k in script[turn - 1]))
            else:
                sim.reply(content="done")
        elif action == "check":
            sim.check({c.n: "low" for c in sim.checks()[-1].check.calls}, **_issues(sim))
        elif action == "stored":
            sim.stored()
        elif action in ("done", "fail"):
            sim.done(n, ok=action == "done", error="boom")
        elif action == "approve":
            sim.vote(f"triage.call-{n}", "approve")
        elif action == "grant":
            sim.vote(f"triage.call-{n}", "approve", grant=GrantSpec(calls=2))
        elif action == "modify":
            sim.vote(f"triage.call-{n}", "modify", patch={"arguments": {"mode": "graceful"}})
        elif action == "reject":
            sim.vote(f"triage.call-{n}", "reject")
        elif action == "pause":
            sim.state.paused = not sim.state.paused
            sim.advance()
        else:
            sim.advance(hold=True)
        _check_new(sim, sim.effects[before:], ran)
    sim.state.paused = False
    sim.advance()
    for _ in range(300):  # drain: answer whatever is left, approve every gate, in order
        if sim.finished:
            break
        action, n = _actions(sim)[0]
        before = len(sim.effects)
        if action == "reply":
            sim.reply(content="done")
        elif action == "check":
            sim.check(**_issues(sim))
        elif action == "stored":
            sim.stored()
        elif action == "done":
            sim.done(n)
        elif action == "approve":
            sim.vote(f"triage.call-{n}", "approve")
        _check_new(sim, sim.effects[before:], ran)
    assert sim.finished and sim.states()["triage"] in ("succeeded", "failed")
    for call in sim.rec.calls:
        if call.decision in ("deny", "refused"):
            assert call.n not in ran, "a refused call ran"


def _issues(sim: AgentSim) -> dict[str, list[str]]:
    asked = sim.checks()[-1].check.calls
    return {f"c{c.n}": ["service: not a string"] for c in asked if c.arguments.get("service") == 1}
