"""Never a hang: generated step graphs, in random listing order, with random conditions,
failures, on_error, gates, votes, pauses, timeouts and cancels, delivered one at a time or
several to one activation, always reach a final state."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rules.sim import Sim
from workflows.contract import TERMINAL_STEP_STATES
from workflows.language.definition import Definition
from workflows.models import LifecycleInput
from workflows.rules import lifecycle
from workflows.rules.gates import gate_spec, next_due
from workflows.rules.scheduler import Invoke, Notify
from workflows.rules.state import Result
from workflows.rules.turn import CALLS

ACTORS = ["ann", "ben", "cat", "dan"]


@st.composite
def definitions(draw: st.DrawFn) -> Definition:
    n = draw(st.integers(1, 10))
    ids = [f"s{i}" for i in range(n)]
    steps: list[dict[str, Any]] = []
    for i, sid in enumerate(ids):
        needs = draw(st.lists(st.sampled_from(ids[:i]), unique=True, max_size=3)) if i else []
        step: dict[str, Any] = {"id": sid, "tool": "t.x", "needs": needs}
        cond = draw(
            st.sampled_from(
                [None, "true", "false", "len(x) > 1", *[f"steps.{n}.output.ok" for n in needs]]
            )
        )
        if cond is not None:
            step["if"] = cond
        if draw(st.booleans()):
            step["on_error"] = "continue"
        if draw(st.booleans()):
            step["allow_skipped_needs"] = True
        shape = draw(st.sampled_from(["plain", "plain", "each", "repeat"]))
        if shape == "each":
            step["for_each"] = "${input.items}"
            if draw(st.booleans()):
                step["max_parallel"] = draw(st.integers(1, 2))
        elif shape == "repeat":
            step["repeat"] = {"until": "output.ok", "max_iterations": 2, "every": "1m"}
        if draw(st.booleans()):
            step["check"] = {"condition": "output.ok or true", "message": "m"}
        if draw(st.integers(0, 2)) == 0:
            stage = draw(st.sampled_from(["before", "after", "on_failure"]))
            gate: dict[str, Any] = {
                "stage": stage,
                "approvers": ["role:ops"],
                "quorum": draw(st.integers(1, 3)),
                "rejections_to_reject": draw(st.integers(1, 2)),
            }
            if draw(st.booleans()):
                gate["timeout"] = "1h"
                gate["on_timeout"] = draw(
                    st.sampled_from(
                        ["reject", "skip", "cancel"]
                        + (["approve"] if stage != "on_failure" else [])
                    )
                )
            if draw(st.booleans()):
                gate["remind_after"] = "10m"
            if shape == "each" and stage != "on_failure" and draw(st.booleans()):
                gate["per_item"] = False
            step["approval"] = gate
        steps.append(step)
    order = draw(st.permutations(steps))
    parallel = draw(st.sampled_from([None, 1, 2]))
    body: dict[str, Any] = {
        "name": "gen",
        "input": {"type": "object", "properties": {"items": {"type": "array"}}},
        "steps": list(order),
    }
    if parallel:
        body["max_parallel"] = parallel
    return Definition.model_validate(body)


def _out(sim: Sim) -> list[str]:
    return [s.id for s in sim.state.in_flight()]


def _open(sim: Sim) -> list[str]:
    return [u.id for u in sim.state.units() if u.gate is not None and u.gate.open]


def _sleeping(sim: Sim) -> bool:
    return any(u.phase == "sleeping" for u in sim.state.units())


def _within_max_parallel(sim: Sim) -> None:
    """The run's and each for_each step's `max_parallel` hold after every pass."""
    running = [u for u in sim.state.units() if u.phase == "running"]
    assert len(running) <= (sim.d.max_parallel or len(running)), [u.id for u in running]
    for spec in sim.d.steps:
        items = sim.state.steps[spec.id].items or []
        if spec.max_parallel is not None:
            assert sum(i.phase == "running" for i in items) <= spec.max_parallel, spec.id


def _act(sim: Sim, data: st.DataObject) -> None:
    """One thing happens from outside: a call returns, someone votes, time passes, a pause, a
    resume or a cancel."""
    choices = ["tick", "pause", "resume", "cancel"]
    choices += ["return"] * 4 if _out(sim) else []
    choices += ["vote"] * 4 if _open(sim) else []
    what = data.draw(st.sampled_from(choices))
    if what == "return":
        sid = data.draw(st.sampled_from(_out(sim)))
        step = sim.step(sid)
        ok = data.draw(st.booleans())
        result = Result(
            round=step.round,
            ok=ok,
            output={"ok": data.draw(st.booleans())} if ok else None,
            error=None if ok else "boom",
            attempts=data.draw(st.integers(1, 3)),
        )
        lifecycle.record_result(sim.state, sid, result)
    elif what == "vote":
        sid = data.draw(st.sampled_from(_open(sim)))
        gate = sim.gate(sid)
        action = data.draw(st.sampled_from(list(gate_spec(sim.d, gate).actions())))
        patch = {"p": data.draw(st.integers(0, 1))} if action in ("modify", "retry") else None
        sim.vote(sid, action, actor=data.draw(st.sampled_from(ACTORS)), patch=patch)
    elif what == "tick":
        sim.now = next_due(sim.state) or sim.now
    elif what == "pause":
        lifecycle.pause(sim.state, None, sim.now)
    elif what == "resume":
        lifecycle.resume(sim.state, None, sim.now)
    else:
        lifecycle.request_cancel(sim.state, LifecycleInput(actor="op"), sim.now)


def _settle(sim: Sim) -> None:
    """Let everyone cooperate: calls succeed, every open gate gets enough approvals (or is
    stopped), the run is resumed. A run that still cannot finish hangs."""
    for _ in range(200):
        sim.advance()
        if sim.finished:
            return
        # The shell advances only when something happens: with nothing out, no gate open and the
        # run not paused, nothing ever will.
        assert _out(sim) or _open(sim) or sim.state.paused or _sleeping(sim), (
            f"hang: {sim.states()}"
        )
        lifecycle.resume(sim.state, None, sim.now)
        sim.now = next_due(sim.state) or sim.now
        for sid in _out(sim):
            lifecycle.record_result(
                sim.state, sid, Result(round=sim.step(sid).round, ok=True, output={"ok": True})
            )
        for sid in _open(sim):
            gate = sim.gate(sid)
            # People who have not voted yet: the random phase may have split the first four.
            for actor in [f"late-{a}" for a in ACTORS]:
                if gate.open:
                    sim.vote(
                        sid, "reject" if gate.stage == "on_failure" else "approve", actor=actor
                    )
    raise AssertionError(f"run did not finish: {sim.states()}")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=definitions(), data=st.data())
def test_every_generated_run_reaches_a_final_state(d: Definition, data: st.DataObject) -> None:
    """Whatever happens, in whatever order, a run ends with every step in a final state."""
    items = data.draw(st.lists(st.integers(0, 9), max_size=3))
    sim = Sim(
        d, {"items": items}, approval_mode=data.draw(st.sampled_from(["manual", "manual", "auto"]))
    )
    for _ in range(data.draw(st.integers(0, 60))):
        effects = sim.advance()
        _within_max_parallel(sim)
        due = next_due(sim.state)
        assert due is None or due > sim.now, "the clock must move past what it handled"
        if sim.state.stop is not None:
            # The shell stops every call out once the run stops; one asked for in this pass
            # would never start, so never report back.
            assert not [e for e in effects if isinstance(e, CALLS)], effects
            # Nor is anyone told of a gate the stop closed.
            assert all(sim.gate(e.step).open for e in effects if isinstance(e, Notify)), effects
        if sim.finished:
            break
        # Several things can arrive in one workflow task: results, votes, signals, time.
        for _ in range(data.draw(st.integers(1, 4))):
            _act(sim, data)
    _settle(sim)
    assert all(u.state in TERMINAL_STEP_STATES for u in sim.state.units()), sim.states()
    assert sim.state.in_flight() == [] and not _open(sim)
    invoked = [e for e in sim.effects if isinstance(e, Invoke)]
    assert all(sim.step(e.step).started_at is not None for e in invoked)
