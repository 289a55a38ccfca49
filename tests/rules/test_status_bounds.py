"""The status stays under its bound whatever the run holds, and the pages return everything: runs
at full size (1,000 items with 3 KB outputs, 1,000 open gates with long reviews) and a run with
every field at its worst (texts of control characters, which JSON writes six times longer)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.rules.sim import T0, Sim
from tests.rules.sim import facts as sim_facts
from workflows.language.definition import Definition
from workflows.models import AuditEntry, Principal, Vote
from workflows.names import StepState
from workflows.rules import bounds, governed_view, pages, summary, view
from workflows.rules.bounds import STATUS_MAX_BYTES, size
from workflows.rules.governed import GovernedInput, GovernedState
from workflows.rules.pages import PageInput, RunPage
from workflows.rules.state import CompensationView, PlanRecord, RunData

FACTS = sim_facts("wf-1", "run-1", Principal(principal="req"), "manual")
ITEMS = 1_000
# JSON writes a control character as \u0000: six bytes for one character.
WORST = "\x00"

FOR_EACH = """
name: big
input: {type: object, properties: {files: {type: array}}}
steps:
  - id: write
    for_each: "${input.files}"
    tool: t.x
    with: {text: "${item.text}"}
"""
GATED = (
    FOR_EACH
    + """    approval: {approvers: ["role:ops"], review: "${item.text}"}
"""
)


def _json(model: Any) -> int:
    return size(model)


def _walk(state: RunData, d: Definition, inp: PageInput) -> list[RunPage]:
    """Every page of one list, each asked for with the cursor the page before gave."""
    got = [pages.page(state, d, inp)]
    while got[-1].next_cursor is not None:
        got.append(pages.page(state, d, inp.model_copy(update={"after": got[-1].next_cursor})))
        assert len(got) <= ITEMS, "the cursor does not move"
    return got


def _items_done_with_outputs(text_bytes: int) -> Sim:
    """A for_each step whose 1,000 items succeeded, each with an output of `text_bytes`."""
    sim = Sim(FOR_EACH, {"files": [{"text": str(i)} for i in range(ITEMS)]})
    sim.advance()
    step = sim.step("write")
    assert step.items is not None and len(step.items) == ITEMS
    for k, item in enumerate(step.items):
        output = {"index": k, "body": "x" * text_bytes}
        item.state, item.phase, item.attempts = StepState.SUCCEEDED, "done", 1
        item.started_at = item.ended_at = T0 + timedelta(seconds=k)
        item.output, item.has_output, item.preview = output, True, view.preview(output)
    return sim


def test_status_of_1000_items_with_3kb_outputs_stays_under_the_bound() -> None:
    """A thousand 3 KB outputs (their previews alone are 2 MB, past Temporal's limit on a query's
    answer) make a status under 256 KiB with the counts, and the items page returns every item
    with its preview, in order, page by page."""
    sim = _items_done_with_outputs(3_000)
    status = summary.status(sim.state, sim.d, FACTS)
    assert _json(status) <= STATUS_MAX_BYTES
    (step,) = status.steps
    assert step.items_total == ITEMS and step.item_counts == {"succeeded": ITEMS}
    assert [i.index for i in step.items or []] == list(range(ITEMS - 10, ITEMS))
    walked = _walk(sim.state, sim.d, PageInput(of="items", step="write", limit=500))
    assert len(walked) > 2, "pages are bounded in bytes, not only in entries"
    assert all(_json(p) <= bounds.PAGE_BYTES + 1_024 for p in walked)
    items = [i for p in walked for i in p.items]
    assert [i.index for i in items] == list(range(ITEMS))
    assert all(i.output_preview == view.preview(sim.step(f"write.{i.index}").output) for i in items)
    assert {p.total for p in walked} == {ITEMS}


def test_status_of_1000_open_gates_with_long_reviews_stays_under_the_bound() -> None:
    """A thousand open gates with 900-character reviews make a status under 256 KiB that lists
    the most urgent first and counts them all; the gates page returns every one of them."""
    files = [{"text": f"{i:04d}" + "r" * 896} for i in range(ITEMS)]
    sim = Sim(GATED, {"files": files})
    sim.advance()
    status = summary.status(sim.state, sim.d, FACTS)
    assert _json(status) <= STATUS_MAX_BYTES
    assert status.open_gates_total == ITEMS and status.state == "waiting"
    assert 10 <= len(status.open_gates) < ITEMS
    assert [g.gate for g in status.open_gates] == [
        f"write.{i}" for i in range(len(status.open_gates))
    ]
    assert all(len(g.review or "") == 900 for g in status.open_gates)
    walked = _walk(sim.state, sim.d, PageInput(of="gates", state="open", limit=500))
    gates = [g for p in walked for g in p.gates]
    assert [g.gate for g in gates] == [f"write.{i}" for i in range(ITEMS)]
    assert all(g.subject == {"text": files[g.item or 0]["text"]} for g in gates)
    assert all(_json(p) <= bounds.PAGE_BYTES + 1_024 for p in walked)


def _worst_votes(long: str) -> list[Vote]:
    """110 votes with long actors, roles and comments, and patches larger than a page shows."""
    return [
        Vote(
            actor=f"v{k}{long[:190]}",
            action="modify" if k % 2 else "reject",
            comment=long * 4,
            at=T0,
            roles=[long[:100]] * 50,
            patch={"p": long * 12},
        )
        for k in range(110)
    ]


def test_status_with_every_field_at_its_worst_stays_under_the_bound() -> None:
    """500 steps with long errors, reasons, previews and plans, gates with a hundred approvers and
    110 votes, audit entries with large patches, a 1,000-character workflow id and a large output,
    all of control characters: still under 256 KiB, and the steps and audit still listed."""
    long = WORST * 1_000
    steps = [
        {"id": f"s{k}", "tool": "t.x", "approval": {"approvers": ["role:ops"]}} for k in range(500)
    ]
    sim = Sim(Definition.model_validate({"name": "worst", "steps": steps}))
    sim.advance()
    votes = _worst_votes(long)
    for k, s in enumerate(sim.state.steps.values()):
        s.error, s.reason, s.preview = long * 5, long * 5, long * 5
        s.started_at = T0 + timedelta(seconds=k)
        s.plan = PlanRecord(definition={"x": long * 12}, errors=[long] * 100)
        s.compensation = CompensationView(state="failed", error=long * 5, at=T0)
        assert s.gate is not None
        s.gate.approvers = [f"user:{k}{long[:150]}" for k in range(100)]
        s.gate.review, s.gate.subject, s.gate.votes = long * 4, {"blob": long * 12}, votes
    for _ in range(50):
        entry = AuditEntry(at=T0, kind="decision", comment=long * 4, reason=long * 4, actor=long)
        sim.state.record(entry.model_copy(update={"patch": {"p": long * 12}, "roles": [long] * 50}))
    sim.state.output = {"out": long * 100}
    sim.state.error = long * 100
    facts = sim_facts(long, "run-1", Principal(principal=long, roles=[long] * 100), "manual")
    status = summary.status(sim.state, sim.d, facts)
    assert _json(status) <= STATUS_MAX_BYTES
    assert status.output is None and status.output_truncated
    assert status.steps_total == 500 and status.open_gates_total == 500
    assert status.steps and status.audit
    one = pages.page(sim.state, sim.d, PageInput(of="gates", limit=500))
    assert one.gates and _json(one) <= bounds.PAGE_BYTES + 1_024
    spec = sim.d.step("s0").approval
    assert spec is not None
    assert _json(view.answer(sim.gate("s0"), spec)) <= bounds.PAGE_BYTES


def test_governed_status_with_every_field_at_its_worst_stays_under_the_bound() -> None:
    """A governed run with the longest request, a context and plan of a megabyte, many errors and
    a review gate at every bound: still under 256 KiB."""
    long = WORST * 1_000
    inp = GovernedInput(
        request=WORST * 10_000,
        context={"c": long * 1_000},
        requester=Principal(principal=long, roles=[long] * 100),
    )
    st = GovernedState(started_at=T0, phase_started=T0, phase="review")
    st.plan, st.plan_errors, st.error = {"p": long * 1_000}, [long] * 500, long * 100
    st.output = {"o": long * 1_000}
    for _ in range(50):
        st.record(AuditEntry(at=T0, kind="decision", comment=long * 4, patch={"p": long * 100}))
    status = governed_view.status(st, inp, long, "r-1", paused=False)
    assert _json(status) <= STATUS_MAX_BYTES
    assert status.governed is not None
    assert status.governed.context_truncated and status.governed.plan_truncated


def test_the_budgets_add_up_to_less_than_the_bound() -> None:
    """The fixed fields' allowance, the output and each list's budget (the error at six bytes a
    character) leave room under STATUS_MAX_BYTES for the JSON around them."""
    pipeline = (
        bounds.STATUS_HEAD_BYTES
        + bounds.STATUS_OUTPUT_BYTES
        + 6 * bounds.STATUS_ERROR_CHARS
        + bounds.STATUS_GATES_BYTES
        + bounds.STATUS_STEPS_BYTES
        + bounds.STATUS_AUDIT_BYTES
        + bounds.STATUS_GRANTS_BYTES
    )
    assert pipeline <= STATUS_MAX_BYTES - 16 * 1024


def test_audit_pages_are_bounded_in_bytes_and_walk_every_entry() -> None:
    """Audit entries with patches of 60 KB fill a page up to its byte budget, not its entry
    limit; following `next_after` reaches every entry once, in order."""
    sim = Sim(FOR_EACH, {"files": []})
    for n in range(40):
        sim.state.record(AuditEntry(at=T0, kind="decision", patch={"p": "x" * 60_000, "n": n}))
    after, seen = 0, []
    while True:
        got = pages.audit_page(sim.state, after, 500)
        assert _json(got) <= bounds.PAGE_BYTES + 1_024
        seen += [e.seq for e in got.entries]
        if got.next_after is None:
            break
        after = got.next_after
    assert seen == list(range(1, 41))
    assert all(e.patch is not None for e in pages.audit_page(sim.state, 0, 500).entries)
