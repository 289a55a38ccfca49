"""The `page` query over each of a run's lists: steps, a for_each step's items, a repeat step's
iterations, its gates and an agent step's calls; each walked with its cursor, filtered by state,
counted, and refused with a precise problem when the list or the cursor does not exist."""

from __future__ import annotations

from tests.rules.agent_sim import AgentSim, agent_def
from tests.rules.sim import T0, Sim
from workflows.models import Vote
from workflows.rules import pages
from workflows.rules.bounds import PAGE_BYTES, size
from workflows.rules.pages import PageInput, RunPage
from workflows.rules.state import Iteration

STEPS = """
name: three
steps:
  - {id: a, tool: t.x}
  - {id: b, tool: t.x}
  - {id: c, tool: t.x, needs: [a]}
"""

ITEMS = """
name: items
input: {type: object, properties: {files: {type: array}}}
steps:
  - id: write
    for_each: "${input.files}"
    on_error: continue
    tool: t.x
    with: {name: "${item}"}
    approval: {approvers: ["role:ops"]}
  - {id: after, tool: t.x}
"""

REPEAT = """
name: poll
steps:
  - id: job
    tool: t.x
    repeat: {until: "output.done", every: 10s, max_iterations: 9}
"""


def _ask(sim: Sim, **kw: object) -> RunPage:
    return pages.page(sim.state, sim.d, PageInput.model_validate(kw))


def _steps() -> Sim:
    """Steps a and b running, c pending until a ends."""
    sim = Sim(STEPS)
    sim.advance()
    return sim


def _items(n: int = 4) -> Sim:
    """A for_each step over `n` items, each waiting at its gate; item 1 rejected."""
    sim = Sim(ITEMS, {"files": [f"f{k}" for k in range(n)]})
    sim.advance()
    sim.vote("write.1", "reject")
    return sim


def _repeat(n: int = 4) -> Sim:
    """A repeat step that has ended `n` iterations."""
    sim = Sim(REPEAT)
    sim.advance()
    sim.step("job").iterations = [Iteration(n=k, ok=True, at=T0) for k in range(1, n + 1)]
    return sim


def test_steps_page_lists_every_step_in_order_with_the_total_and_no_cursor_at_the_end() -> None:
    """The steps page holds each step once, in definition order, counts them, and names no next
    page when it holds the last one; the other lists stay empty."""
    got = _ask(_steps(), of="steps")
    assert got.of == "steps" and [s.id for s in got.steps] == ["a", "b", "c"]
    assert got.total == 3 and got.next_cursor is None and got.problem is None
    assert (got.items, got.iterations, got.gates, got.calls) == ([], [], [], [])


def test_steps_pages_walk_with_the_cursor_of_the_last_step_shown() -> None:
    """With a limit of one, each page names its one step as the cursor, the next page starts
    right after it, and the last page names none."""
    sim = _steps()
    first = _ask(sim, of="steps", limit=1)
    assert [s.id for s in first.steps] == ["a"] and first.next_cursor == "a"
    second = _ask(sim, of="steps", limit=1, after="a")
    assert [s.id for s in second.steps] == ["b"] and second.next_cursor == "b"
    last = _ask(sim, of="steps", limit=1, after="b")
    assert [s.id for s in last.steps] == ["c"] and last.next_cursor is None
    assert first.total == second.total == last.total == 3
    two = _ask(sim, of="steps", limit=2)
    assert [s.id for s in two.steps] == ["a", "b"] and two.next_cursor == "b"


def test_steps_page_filters_by_state_and_counts_only_those() -> None:
    """`state` keeps only the steps in it; the total counts the steps in that state, and a
    cursor still places the page among all the steps."""
    sim = _steps()
    running = _ask(sim, of="steps", state="running")
    assert [s.id for s in running.steps] == ["a", "b"] and running.total == 2
    pending = _ask(sim, of="steps", state="pending")
    assert [s.id for s in pending.steps] == ["c"] and pending.total == 1
    later = _ask(sim, of="steps", state="running", after="a")
    assert [s.id for s in later.steps] == ["b"] and later.total == 2
    none = _ask(sim, of="steps", state="failed")
    assert none.steps == [] and none.total == 0 and none.next_cursor is None


def test_steps_page_refuses_a_cursor_that_names_no_step() -> None:
    """An `after` that is no step's id is a bad cursor, said in words, with every list empty."""
    got = _ask(_steps(), of="steps", after="zz")
    assert got.problem == "bad_cursor"
    assert got.message == "cursor 'zz' names no step of this run"
    assert got.steps == [] and got.total == 0 and got.next_cursor is None


def test_items_page_walks_the_items_by_index() -> None:
    """The items page lists a for_each step's items by index; its cursor is the index of the
    last one shown, item 0 included, and `after` starts past that index."""
    sim = _items()
    first = _ask(sim, of="items", step="write", limit=1)
    assert [i.index for i in first.items] == [0] and first.next_cursor == "0"
    assert first.of == "items" and first.total == 4
    rest = _ask(sim, of="items", step="write", after="0")
    assert [i.index for i in rest.items] == [1, 2, 3] and rest.next_cursor is None
    mid = _ask(sim, of="items", step="write", after="1", limit=2)
    assert [i.index for i in mid.items] == [2, 3] and mid.next_cursor is None
    assert [i.index for i in _ask(sim, of="items", step="write", after="3").items] == []


def test_items_page_filters_by_state() -> None:
    """`state` keeps the items in it, and the total counts only those."""
    sim = _items()
    waiting = _ask(sim, of="items", step="write", state="waiting")
    assert [i.index for i in waiting.items] == [0, 2, 3] and waiting.total == 3
    skipped = _ask(sim, of="items", step="write", state=sim.step("write.1").state.value)
    assert [i.index for i in skipped.items] == [1] and skipped.total == 1


def test_items_page_shows_each_items_gate() -> None:
    """Items on the page carry their gates in full (the status leaves them out)."""
    got = _ask(_items(2), of="items", step="write")
    assert [i.gate.gate if i.gate else None for i in got.items] == ["write.0", "write.1"]


def test_items_page_refuses_cursors_that_are_not_small_plain_numbers() -> None:
    """An items cursor is an index: words, signs, digits of other scripts and numbers of more
    than twelve digits are bad cursors; twelve digits are a cursor past every item."""
    sim = _items()
    for bad in ("x", "-1", "\uff11", "1.0", "1" * 13, ""):
        got = _ask(sim, of="items", step="write", after=bad)
        assert got.problem == "bad_cursor", bad
        assert got.message == f"cursor {bad!r} names no item of this run"
    far = _ask(sim, of="items", step="write", after="9" * 12)
    assert far.problem is None and far.items == [] and far.total == 4


def test_items_page_of_a_step_without_items_is_refused() -> None:
    """A step that is not a for_each step (or whose list is not resolved) has no items page."""
    got = _ask(_items(), of="items", step="after")
    assert got.problem == "no_items" and got.of == "items"
    assert got.message == (
        "step 'after' has no items: it is not a for_each step, or its list is not resolved yet"
    )


def test_lists_of_a_step_refuse_an_unknown_or_missing_step() -> None:
    """Items, iterations and calls of a step the run does not have (or of no step) are refused
    with the step named."""
    sim = _items()
    for of in ("items", "iterations", "calls"):
        got = _ask(sim, of=of, step="nope")
        assert (got.of, got.problem, got.message) == (
            of,
            "unknown_step",
            "no step 'nope' in this run",
        )
    got = _ask(sim, of="items")
    assert got.problem == "unknown_step" and got.message == "no step None in this run"


def test_iterations_page_walks_the_iterations_by_number() -> None:
    """The iterations page lists a repeat step's iterations by number; the cursor is the number
    of the last one shown and `after` starts past it; the total counts every iteration."""
    sim = _repeat()
    first = _ask(sim, of="iterations", step="job", limit=2)
    assert [i.n for i in first.iterations] == [1, 2] and first.next_cursor == "2"
    assert first.of == "iterations" and first.total == 4
    rest = _ask(sim, of="iterations", step="job", after="2")
    assert [i.n for i in rest.iterations] == [3, 4] and rest.next_cursor is None
    assert rest.total == 4
    assert _ask(sim, of="iterations", step="job", after="4").iterations == []


def test_iterations_page_refuses_a_bad_cursor_and_a_step_that_does_not_repeat() -> None:
    """A cursor that is not a number is refused naming an iteration; a step without `repeat`
    has no iterations page."""
    got = _ask(_repeat(), of="iterations", step="job", after="two")
    assert got.problem == "bad_cursor"
    assert got.message == "cursor 'two' names no iteration of this run"
    plain = _ask(_items(), of="iterations", step="after")
    assert plain.problem == "no_iterations"
    assert plain.message == "step 'after' is not a repeat step"


def test_gates_page_lists_every_gate_in_unit_order_and_walks_by_gate_id() -> None:
    """The gates page holds every unit's gate in the units' order with its subject, the cursor
    is the id of the last gate shown, and `after` starts right past that gate."""
    sim = _items(3)
    every = _ask(sim, of="gates")
    assert [g.gate for g in every.gates] == ["write.0", "write.1", "write.2"]
    assert every.of == "gates" and every.total == 3 and every.next_cursor is None
    assert every.gates[0].subject == {"name": "f0"}
    first = _ask(sim, of="gates", limit=1)
    assert [g.gate for g in first.gates] == ["write.0"] and first.next_cursor == "write.0"
    rest = _ask(sim, of="gates", after="write.0")
    assert [g.gate for g in rest.gates] == ["write.1", "write.2"] and rest.total == 3


def test_gates_page_filters_by_gate_state() -> None:
    """`state` keeps the gates in it (open or decided), and the total counts only those."""
    sim = _items(3)
    rejected = _ask(sim, of="gates", state="rejected")
    assert [g.gate for g in rejected.gates] == ["write.1"] and rejected.total == 1
    opened = _ask(sim, of="gates", state="open")
    assert [g.gate for g in opened.gates] == ["write.0", "write.2"] and opened.total == 2
    later = _ask(sim, of="gates", state="open", after="write.1")
    assert [g.gate for g in later.gates] == ["write.2"] and later.total == 2


def test_gates_page_refuses_a_cursor_that_names_no_gate() -> None:
    """An `after` that is no gate's id is a bad cursor naming a gate."""
    got = _ask(_items(), of="gates", after="write.9")
    assert got.problem == "bad_cursor" and got.gates == []
    assert got.message == "cursor 'write.9' names no gate of this run"


def _agent() -> AgentSim:
    """An agent step whose model asked for three reads: two came back, one is running."""
    sim = AgentSim(agent_def(), {"service": "api"})
    sim.advance()
    sim.reply(*[("ops_read", {"service": s}) for s in "abc"])
    sim.check()
    sim.done(1)
    sim.done(2)
    return sim


def test_calls_page_walks_an_agent_steps_calls_by_number() -> None:
    """The calls page lists the calls in order; the cursor is the number of the last one shown
    and `after` starts past it."""
    sim = _agent()
    first = _ask(sim, of="calls", step="triage", limit=2)
    assert [c.n for c in first.calls] == [1, 2] and first.next_cursor == "2"
    assert first.of == "calls" and first.total == 3
    rest = _ask(sim, of="calls", step="triage", after="2")
    assert [c.n for c in rest.calls] == [3] and rest.next_cursor is None


def test_calls_page_filters_by_call_state() -> None:
    """`state` keeps the calls in it, and the total counts only those."""
    sim = _agent()
    states = {c.n: c.state for c in sim.rec.calls}
    assert states[1] == states[2] != states[3]
    done = _ask(sim, of="calls", step="triage", state=states[1])
    assert [c.n for c in done.calls] == [1, 2] and done.total == 2
    out = _ask(sim, of="calls", step="triage", state=states[3])
    assert [c.n for c in out.calls] == [3] and out.total == 1


def test_calls_page_refuses_a_bad_cursor_and_a_step_that_is_no_agent() -> None:
    """A calls cursor that is not a number is refused naming a call; a step that is not an
    agent step has no calls page."""
    got = _ask(_agent(), of="calls", step="triage", after="c1")
    assert got.problem == "bad_cursor"
    assert got.message == "cursor 'c1' names no call of this run"
    plain = _ask(_items(), of="calls", step="after")
    assert plain.problem == "no_calls" and plain.of == "calls"
    assert plain.message == (
        "step 'after' has no calls: it is not an agent step, or it has not started"
    )


def test_a_list_with_nothing_in_it_gives_an_empty_page_without_a_cursor() -> None:
    """An empty list (here: a repeat step before its first iteration) is an empty page, not a
    problem."""
    got = _ask(_repeat(0), of="iterations", step="job")
    assert got.problem is None and got.iterations == [] and got.total == 0
    assert got.next_cursor is None


def test_gates_pages_fill_with_whole_gates_and_walk_every_one() -> None:
    """Gates whose subjects are 50 KB each fill a page up to its bytes with every subject whole
    (the next gate waits for the next page rather than lose its subject), and following the
    cursor reaches each gate once, in order."""
    sim = Sim(ITEMS, {"files": [f"{k:02}" + "s" * 50_000 for k in range(30)]})
    sim.advance()
    after, seen = None, []
    while True:
        got = _ask(sim, of="gates", limit=500, after=after)
        assert 1 < len(got.gates) < 30 and got.total == 30
        assert all(g.subject is not None and not g.subject_truncated for g in got.gates)
        assert size(got) <= PAGE_BYTES + 1_024
        seen += [g.gate for g in got.gates]
        if got.next_cursor is None:
            break
        assert got.next_cursor == got.gates[-1].gate
        after = got.next_cursor
    assert seen == [f"write.{k}" for k in range(30)]


def test_a_gate_too_large_to_show_whole_is_shown_briefer_on_its_page() -> None:
    """A gate with a hundred votes whose comments are long runs of control characters (megabytes
    of JSON in full) is shown with fewer votes and shorter comments, its page within its bytes."""
    sim = _items(2)
    gate = sim.gate("write.0")
    gate.votes = [
        Vote(
            actor=f"v{k}",
            action="reject",
            comment="\x00" * 5_000,
            at=T0,
            roles=["ops"],
            digest=gate.digest,
        )
        for k in range(100)
    ]
    got = _ask(sim, of="gates", limit=1)
    (shown,) = got.gates
    assert shown.gate == "write.0" and shown.rejections_total == 100
    assert 0 < len(shown.rejections) < 100 and size(got) <= PAGE_BYTES
    assert got.next_cursor == "write.0"


def test_a_step_larger_than_a_page_is_shown_alone_so_the_walk_moves_on() -> None:
    """A step whose record is over a page's bytes even in its briefest form (an artifact
    reference of megabytes) is still shown, alone on its page, and the next page starts after
    it."""
    sim = _steps()
    sim.step("a").artifact = {"uri": "u" * (PAGE_BYTES + 10)}
    first = _ask(sim, of="steps")
    assert [s.id for s in first.steps] == ["a"] and first.next_cursor == "a"
    rest = _ask(sim, of="steps", after="a")
    assert [s.id for s in rest.steps] == ["b", "c"] and rest.next_cursor is None


def test_a_list_asked_for_without_a_step_is_refused_whatever_the_steps_are_called() -> None:
    """Naming no step never picks one, even in a run whose step ids are upper-case words."""
    sim = Sim("name: caps\nsteps: [{id: XXXX, tool: t.x}]")
    sim.advance()
    for of in ("items", "iterations", "calls"):
        got = _ask(sim, of=of)
        assert got.problem == "unknown_step" and got.message == "no step None in this run"
