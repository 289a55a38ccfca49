"""A run's lists a page at a time: its steps, a for_each step's items, a repeat step's
iterations, its gates (the `page` query) and its audit trail (the `audit` query). The status
shows the latest of each; these return all of them. A page holds at most `limit` entries and
PAGE_BYTES of JSON; `next_cursor` names the last entry it holds, and the next page starts after
it. Pure functions of the state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from workflows.agent_models import CallView
from workflows.language.definition import ApprovalSpec, Definition
from workflows.language.limits import MAX_GATE_ID_CHARS, MAX_ID_CHARS
from workflows.models import (
    AuditEntry,
    AuditPage,
    GateView,
    ItemView,
    IterationView,
    StepView,
)
from workflows.rules.agent_view import call_view
from workflows.rules.bounds import (
    PAGE_BYTES,
    PAGE_LADDER,
    PAGE_MAX,
    ROLES,
    Bounds,
    clip,
    fit,
    names,
    small,
)
from workflows.rules.gates import gate_spec
from workflows.rules.state import GateRecord, RunData, StepRecord
from workflows.rules.view import gate_state, gate_view, item_view, iteration_view, step_view

PageOf = Literal["steps", "items", "iterations", "gates", "calls"]
Problem = Literal["unknown_step", "no_items", "no_iterations", "no_calls", "bad_cursor"]
M = TypeVar("M", bound=BaseModel)


class PageInput(BaseModel):
    """Which list, and which page of it: entries after `after` (the `next_cursor` of the page
    before; none: from the start), at most `limit`, only those in `state` if given."""

    model_config = ConfigDict(extra="forbid")

    of: PageOf
    step: str | None = Field(None, max_length=MAX_ID_CHARS, description="items, iterations, calls")
    state: str | None = Field(None, max_length=20, description="a step, item or gate state")
    after: str | None = Field(None, max_length=MAX_GATE_ID_CHARS)
    limit: int = Field(50, ge=1, le=PAGE_MAX)


class RunPage(BaseModel):
    """One page of the list asked for (the other lists stay empty), or why there is none."""

    of: PageOf
    steps: list[StepView] = Field(default_factory=list)
    items: list[ItemView] = Field(default_factory=list)
    iterations: list[IterationView] = Field(default_factory=list)
    gates: list[GateView] = Field(default_factory=list)
    calls: list[CallView] = Field(default_factory=list)
    total: int = Field(0, description="entries of the whole list (in `state`, when given)")
    next_cursor: str | None = Field(None, description="pass as `after` for the next page")
    problem: Problem | None = None
    message: str | None = None


# (cursor of the entry, its rendering at some bounds)
Entry = tuple[str, Callable[[Bounds], M]]


def page(state: RunData, d: Definition, inp: PageInput) -> RunPage:
    """The page `inp` asks for."""
    if inp.of == "steps":
        return _steps(state, d, inp)
    if inp.of == "gates":
        return _gates(state, d, inp)
    step = state.steps.get(inp.step or "")
    if step is None:
        return refused(inp, "unknown_step", f"no step {inp.step!r} in this run")
    if inp.of == "calls":
        return _calls(step, inp)
    if inp.of == "items":
        if step.items is None:
            why = "has no items: it is not a for_each step, or its list is not resolved yet"
            return refused(inp, "no_items", f"step {step.id!r} {why}")
        wanted = [i for i in step.items if _in(inp, i.state.value)]
        after = _number(inp.after)
        if after is None and inp.after is not None:
            return _bad_cursor(inp)
        entries = [
            (str(i.index or 0), partial(item_view, i, d))
            for i in wanted
            if after is None or (i.index or 0) > after
        ]
        return filled(inp, "items", entries, len(wanted))
    if d.step(step.id).repeat is None:
        return refused(inp, "no_iterations", f"step {step.id!r} is not a repeat step")
    after = _number(inp.after)
    if after is None and inp.after is not None:
        return _bad_cursor(inp)
    rounds = [
        (str(i.n), partial(iteration_view, i))
        for i in step.iterations
        if after is None or i.n > after
    ]
    return filled(inp, "iterations", rounds, len(step.iterations))


def _steps(state: RunData, d: Definition, inp: PageInput) -> RunPage:
    ids = list(state.steps)
    if inp.after is not None and inp.after not in state.steps:
        return _bad_cursor(inp)
    start = ids.index(inp.after) + 1 if inp.after is not None else 0
    wanted = [(k, s) for k, s in enumerate(state.steps.values()) if _in(inp, s.state.value)]
    entries = [(s.id, partial(step_view, s, d)) for k, s in wanted if k >= start]
    return filled(inp, "steps", entries, len(wanted))


def _gates(state: RunData, d: Definition, inp: PageInput) -> RunPage:
    """Every unit's latest gate, in the order of the units (steps, each followed by its items;
    an agent step by its calls' gates)."""
    gates = [g for _, g in state.gates()]
    start = 0
    if inp.after is not None:
        found = next((k for k, g in enumerate(gates) if g.gate == inp.after), None)
        if found is None:
            return _bad_cursor(inp)
        start = found + 1
    wanted = [
        (k, g, spec)
        for k, g in enumerate(gates)
        if _in(inp, gate_state(g)) and (spec := gate_spec(d, g)) is not None
    ]
    entries: list[Entry[GateView]] = [
        (g.gate, partial(_gate, g, spec)) for k, g, spec in wanted if k >= start
    ]
    return filled(inp, "gates", entries, len(wanted))


def _calls(step: StepRecord, inp: PageInput) -> RunPage:
    """Every call an agent step's model asked for, in order, each whole within its bounds."""
    if step.agent is None:
        why = "has no calls: it is not an agent step, or it has not started"
        return refused(inp, "no_calls", f"step {step.id!r} {why}")
    after = _number(inp.after)
    if after is None and inp.after is not None:
        return _bad_cursor(inp)
    wanted = [c for c in step.agent.calls if _in(inp, c.state)]
    entries = [(str(c.n), partial(call_view, c)) for c in wanted if after is None or c.n > after]
    return filled(inp, "calls", entries, len(wanted))


def _gate(g: GateRecord, spec: ApprovalSpec, b: Bounds) -> GateView:
    return gate_view(g, spec, with_subject=True, b=b)


def _in(inp: PageInput, state: str) -> bool:
    return inp.state is None or inp.state == state


def filled(inp: PageInput, of: PageOf, entries: Sequence[Entry[M]], total: int) -> RunPage:
    views = fit(
        [r for _, r in entries], PAGE_LADDER, PAGE_BYTES, inp.limit, uniform=True, page=True
    )
    more = len(views) < len(entries)
    return RunPage.model_validate(
        {
            "of": of,
            of: views,
            "total": total,
            "next_cursor": entries[len(views) - 1][0] if more and views else None,
        }
    )


def refused(inp: PageInput, problem: Problem, message: str) -> RunPage:
    return RunPage(of=inp.of, problem=problem, message=message)


def _bad_cursor(inp: PageInput) -> RunPage:
    return refused(inp, "bad_cursor", f"cursor {inp.after!r} names no {inp.of[:-1]} of this run")


def _number(text: str | None) -> int | None:
    return (
        int(text)
        if text is not None and text.isascii() and text.isdigit() and len(text) <= 12
        else None
    )


def entry_view(e: AuditEntry, b: Bounds) -> AuditEntry:
    """An audit entry with its texts and patch within `b`."""
    patch, cut = small(e.patch, b.value)
    return e.model_copy(
        update={
            "actor": clip(e.actor, b.text),
            "roles": names(e.roles, ROLES),
            "comment": clip(e.comment, b.text),
            "reason": clip(e.reason, b.text),
            "patch": patch,
            "patch_truncated": cut or e.patch_truncated,
            "response": small(e.response, b.value)[0],
        }
    )


def audit_page(state: RunData, after: int, limit: int) -> AuditPage:
    """Entries after `after` still kept in the state; older ones are named as archived chunks."""
    got = page_of(state.audit, state.audit_total, after, limit)
    got.archived = [a for a in state.archives if a.last_seq > after]
    return got


def page_of(entries: list[AuditEntry], total: int, after: int, limit: int) -> AuditPage:
    """At most `limit` entries after `after`, and at most PAGE_BYTES of them."""
    wanted = [e for e in entries if (e.seq or 0) > after]
    kept = fit(
        [partial(entry_view, e) for e in wanted],
        PAGE_LADDER,
        PAGE_BYTES,
        limit,
        uniform=True,
        page=True,
    )
    last = kept[-1].seq if kept else None
    return AuditPage(
        entries=kept,
        total=total,
        next_after=last if last is not None and last < total else None,
    )
