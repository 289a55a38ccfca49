"""A gate's life apart from votes: opening it, and what its clock does (deadlines, escalation,
reminders with a cap and a backoff). Pure: `now` is always given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from workflows.language.agent import CALL_ACTIONS, function_name
from workflows.language.definition import ApprovalSpec, Definition, Stage
from workflows.language.durations import parse_duration
from workflows.language.types import PATCHING_ACTIONS
from workflows.models import AuditEntry
from workflows.names import StepState
from workflows.rules.bounds import cut
from workflows.rules.state import GateRecord, RunData, StepRecord, Trail
from workflows.rules.votes import SYSTEM_ACTOR, close, digest_of

TIMEOUT_ACTOR = f"{SYSTEM_ACTOR}:timeout"


@dataclass(frozen=True)
class Notify:
    """Tell a gate's approvers something (`opened`, `reminder`, `escalated`). `step` is the
    unit whose gate it is: a step, or a for_each item (`<step>.<index>`, also its gate's id)."""

    step: str
    gate: str
    event: str
    # For `held`: the principals quiet hours kept from an earlier notification, told alone.
    only: tuple[str, ...] = ()


def gate_spec(d: Definition, gate: GateRecord) -> ApprovalSpec | None:
    """The approval spec a gate follows, narrowed where its subject cannot be patched: a plan's
    gate (a changed plan would need checking again) and a gate over a whole for_each list offer
    neither modify nor retry. None only for a step without one, which never opens a gate."""
    step = d.step(gate.step.partition(".")[0])
    if gate.call is not None:
        entry = step.agent.entry(function_name(gate.tool or "")) if step.agent else None
        spec = (entry.approval if entry is not None else None) or step.approval
        if spec is None:
            return None
        allowed = [a for a in spec.actions() if a in CALL_ACTIONS]
        return spec.model_copy(update={"allow": allowed})
    spec = step.approval
    if spec is None:
        return None
    whole_list = step.for_each is not None and gate.item is None
    is_plan = step.pipeline is not None and not isinstance(step.pipeline, str)
    if not (whole_list or is_plan):
        return spec
    narrowed = [a for a in spec.actions() if a not in PATCHING_ACTIONS]
    return spec.model_copy(update={"allow": narrowed})


def new_gate(
    gate_id: str, step_id: str, spec: ApprovalSpec, stage: Stage, subject: Any, now: datetime
) -> GateRecord:
    """A gate opened now on `subject`, with its deadline and first reminder."""
    return GateRecord(
        gate=gate_id,
        step=step_id,
        stage=stage,
        round=0,
        subject=subject,
        digest=digest_of(subject),
        opened_at=now,
        deadline=_deadline(spec.timeout, now),
        approvers=list(spec.approvers),
        next_reminder=_reminder_after(spec, 0, now),
    )


def open_gate(
    step: StepRecord, spec: ApprovalSpec, stage: Stage, subject: Any, now: datetime
) -> GateRecord:
    """Open the step's gate for this round; the step waits on it."""
    gate = new_gate(step.id, step.id, spec, stage, subject, now)
    gate.round = step.round
    step.gate = gate
    step.phase = "gate"
    step.state = StepState.WAITING
    return gate


def _deadline(limit: str | None, now: datetime) -> datetime | None:
    return now + parse_duration(limit) if limit else None


def _reminder_after(spec: ApprovalSpec, sent: int, now: datetime) -> datetime | None:
    """When the next reminder is due after `sent` reminders: never past the cap, each interval
    `remind_backoff` times the one before."""
    if not spec.remind_after or sent >= spec.max_reminders:
        return None
    first = parse_duration(spec.remind_after).total_seconds()
    return now + timedelta(seconds=first * spec.remind_backoff**sent)


def open_gates(state: RunData) -> list[tuple[StepRecord, GateRecord]]:
    return [(u, g) for u, g in state.gates() if g.open]


# What the Web UI shows on the run's timer; Temporal refuses a summary over 400 bytes.
ALARM_SUMMARY_CHARS = 250


@dataclass(frozen=True)
class Due:
    """A moment the run's clock needs it, and what for, in the words its timer shows."""

    at: datetime
    summary: str


def gate_clock(gate: GateRecord, reminder: bool = False) -> str:
    """A gate's timer in words: the gate, who may decide it and its deadline (a reminder's
    timer says which reminder is next)."""
    deadline = gate.deadline.isoformat(timespec="seconds") if gate.deadline else "none"
    next_reminder = f"reminder {gate.reminders + 1} due; " if reminder else ""
    text = (
        f"gate {gate.gate}: {next_reminder}deadline {deadline}; "
        f"may decide: {', '.join(gate.approvers)}"
    )
    return cut(text, ALARM_SUMMARY_CHARS)


def next_alarm(state: RunData) -> Due | None:
    """The earliest moment the run's clock needs it (the first of equals, in state order): a
    gate's deadline or reminder, a repeat step's next iteration, or an agent loop's deadline."""
    dues: list[Due] = []
    for _, g in open_gates(state):
        if g.deadline is not None:
            dues.append(Due(g.deadline, gate_clock(g)))
        if g.next_reminder is not None:
            dues.append(Due(g.next_reminder, gate_clock(g, reminder=True)))
        if g.held_until is not None:
            text = f"gate {g.gate}: quiet hours end for {', '.join(g.held)}"
            dues.append(Due(g.held_until, cut(text, ALARM_SUMMARY_CHARS)))
    for u in state.units():
        if u.phase == "sleeping" and u.next_at is not None:
            dues.append(Due(u.next_at, cut(f"step {u.id}: next iteration", ALARM_SUMMARY_CHARS)))
        elif u.phase == "agent" and u.agent is not None and u.agent.ending is None:
            if u.agent.deadline is not None:
                text = f"step {u.id}: the agent's deadline"
                dues.append(Due(u.agent.deadline, cut(text, ALARM_SUMMARY_CHARS)))
    return min(dues, key=lambda d: d.at, default=None)


def next_due(state: RunData) -> datetime | None:
    """When the run's clock next needs it (see next_alarm)."""
    due = next_alarm(state)
    return due.at if due is not None else None


def on_time(state: RunData, definition: Definition, now: datetime) -> list[Notify]:
    """Act on every deadline and reminder that has come; returns the notifications to send."""
    sent: list[Notify] = []
    for step, gate in open_gates(state):
        spec = gate_spec(definition, gate)
        if spec is None:
            continue
        if gate.deadline is not None and gate.deadline <= now:
            sent += timed_out(state, gate, spec, now)
        if gate.open and gate.next_reminder is not None and gate.next_reminder <= now:
            gate.reminders += 1
            gate.next_reminder = _reminder_after(spec, gate.reminders, now)
            state.record(
                AuditEntry(
                    at=now,
                    kind="reminder",
                    gate=gate.gate,
                    reason=f"reminder {gate.reminders} of at most {spec.max_reminders}",
                )
            )
            sent.append(Notify(step.id, gate.gate, "reminder"))
        if gate.held_until is not None and gate.held_until <= now:
            sent += _held_due(step, gate, sent)
    return sent


def _held_due(step: StepRecord, gate: GateRecord, sent: list[Notify]) -> list[Notify]:
    """Quiet hours have ended for someone a notification held: tell those it held, unless the
    gate closed or a reminder or escalation to everyone goes out in this same pass."""
    held = tuple(gate.held)
    gate.held, gate.held_until = [], None
    if not gate.open or any(n.gate == gate.gate for n in sent):
        return []
    gate.held_told += 1
    return [Notify(step.id, gate.gate, "held", held)]


def timed_out(state: Trail, gate: GateRecord, spec: ApprovalSpec, now: datetime) -> list[Notify]:
    """A gate's deadline passed: escalate it once if its spec says so, else close it the way
    `on_timeout` says, recorded in the audit; the notifications to send."""
    if spec.on_timeout == "escalate" and not gate.escalated:
        gate.escalated = True
        gate.approvers = list(dict.fromkeys([*gate.approvers, *spec.escalate_to]))
        gate.deadline = _deadline(spec.escalation_timeout or spec.timeout, now)
        state.record(
            AuditEntry(
                at=now,
                kind="escalation",
                gate=gate.gate,
                reason=f"escalated to {', '.join(spec.escalate_to)}",
            )
        )
        return [Notify(gate.gate, gate.gate, "escalated")]
    action = "reject" if spec.on_timeout == "escalate" else spec.on_timeout
    close(gate, action, [TIMEOUT_ACTOR], now, None)
    state.record(
        AuditEntry(
            at=now, kind="timeout", gate=gate.gate, action=action, reason="gate deadline passed"
        )
    )
    return []
