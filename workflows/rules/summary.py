"""The status of a run: a summary that stays under STATUS_MAX_BYTES of JSON whatever the run
holds, so the `status` query never meets Temporal's limit on a query's answer, during the run or
after it closed. It shows the counts, the open gates (the most urgent first), the steps that
moved last and the latest audit entries, each list within its own budget (workflows/rules/
bounds.py); the `page` and `audit` queries return the rest (pages.py). Pure functions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from functools import partial

from activities.masking import mask
from workflows.language.definition import Definition
from workflows.models import AuditEntry, GateSummary, GateView, Principal, Progress, RunStatus
from workflows.rules.agent_view import grants
from workflows.rules.bounds import (
    NAME_CHARS,
    ROLES,
    STATUS_AUDIT,
    STATUS_AUDIT_BYTES,
    STATUS_ERROR_CHARS,
    STATUS_GATES,
    STATUS_GATES_BYTES,
    STATUS_OUTPUT_BYTES,
    STATUS_STEPS,
    STATUS_STEPS_BYTES,
    SUMMARY_LADDER,
    Render,
    clip,
    cut,
    fit,
    names,
    small,
)
from workflows.rules.pages import entry_view
from workflows.rules.state import RunData, StepRecord, Trail
from workflows.rules.turn import RunContext
from workflows.rules.view import (
    NEVER,
    child_gate_view,
    gate_view,
    moved,
    own_open,
    run_state,
    specced,
    step_view,
)


def status(
    state: RunData, d: Definition, facts: RunContext, now: datetime | None = None
) -> RunStatus:
    """The bounded status: the counts, open gates first, the latest steps and audit entries,
    the latest grants (active or not as of `now`). `facts`: the run's ids, requester and
    approval mode (its RunContext holds them)."""
    opened = own_open(state)
    own: list[Render[GateView]] = [
        partial(gate_view, g, spec, with_subject=True)
        for g, spec in specced(d, opened, STATUS_GATES)
    ]
    kids = child_gates((c.workflow_id, g) for c in state.children.values() for g in c.gates)
    gates = fit([*own, *kids], SUMMARY_LADDER, STATUS_GATES_BYTES, STATUS_GATES, uniform=True)
    ranked = sorted(enumerate(state.steps.values()), key=_recency, reverse=True)
    listed = fit(
        [partial(step_view, s, d) for _, s in ranked],
        SUMMARY_LADDER,
        STATUS_STEPS_BYTES,
        STATUS_STEPS,
    )
    order = {sid: k for k, sid in enumerate(state.steps)}
    output, output_cut = small(mask(state.output), STATUS_OUTPUT_BYTES)
    done = sum(s.phase == "done" for s in state.steps.values())
    total = len(state.steps)
    return RunStatus(
        workflow_id=facts.workflow_id,
        run_id=facts.run_id,
        state=run_state(state).value,
        pipeline=d.name,
        version=d.version,
        requester=requester(facts.requester),
        approval_mode=facts.approval_mode,
        started_at=state.started_at,
        revision=state.revision,
        paused=state.paused,
        steps=sorted(listed, key=lambda v: order[v.id]),
        steps_total=total,
        step_counts=dict(Counter(s.state.value for s in state.steps.values())),
        progress=Progress(done=done, total=total, percent=round(100.0 * done / total, 1)),
        open_gates=gates,
        open_gates_total=len(opened) + len(kids),
        output=output,
        output_truncated=output_cut,
        error=clip(state.error, STATUS_ERROR_CHARS),
        audit=audit_tail(state),
        audit_total=state.audit_total,
        continued=state.generation,
        grants=grants(state, now),
    )


def _recency(ranked: tuple[int, StepRecord]) -> tuple[bool, datetime, int]:
    """Steps under way first, then the one that moved last (its items too), then the first."""
    k, s = ranked
    last = max(moved(s), max(map(moved, s.items or ()), default=NEVER))
    return s.phase not in ("pending", "done"), last, -k


def child_gates(gates: Iterable[tuple[str | None, GateSummary]]) -> list[Render[GateView]]:
    """Child runs' open gates, each named by its run, to render."""
    return [partial(child_gate_view, workflow_id, g) for workflow_id, g in gates]


def audit_tail(trail: Trail) -> list[AuditEntry]:
    """The latest audit entries, as many of the last STATUS_AUDIT as fit their budget."""
    newest = [partial(entry_view, e) for e in reversed(trail.audit[-STATUS_AUDIT:])]
    return fit(newest, SUMMARY_LADDER, STATUS_AUDIT_BYTES, STATUS_AUDIT, uniform=True)[::-1]


def requester(p: Principal | None) -> Principal | None:
    if p is None:
        return None
    return Principal(principal=cut(p.principal, NAME_CHARS), roles=names(p.roles, ROLES))
