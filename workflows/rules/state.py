"""The one serializable state of a pipeline run: every step, gate, vote and audit entry.

The rule modules (scheduler, gates, votes, view) read and change it; the workflow shell only holds
it, and carries it across continue-as-new. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.models import Slot
from workflows.language.definition import Definition
from workflows.models import AuditArchiveRef, AuditEntry, CompensationView, GateSummary
from workflows.names import RunState, StepState
from workflows.rules.agent_state import AgentRecord, Grant
from workflows.rules.records import GateRecord, Outcome, Result

__all__ = ["GateRecord", "Outcome", "Result"]

# Where a unit of work (a step, or an item of a for_each step) is in its life; `state` says what
# the outside world sees. `items`: a for_each step whose items are under way; `planning`: a plan
# out for its check; `loading`: a for_each step's list being read from the artifact store;
# `sleeping`: a repeat step waiting for its next iteration.
# "queued": approved at a gate (or sent back to retry), waiting for a free slot to make its call.
# "agent": an agent step in its loop (workflows/rules/agent.py).
Phase = Literal[
    "pending",
    "gate",
    "queued",
    "running",
    "items",
    "planning",
    "loading",
    "sleeping",
    "agent",
    "done",
]

# Audit entries kept in the state; older ones move to the artifact store in chunks.
AUDIT_KEEP = 200
AUDIT_CHUNK = 200


class Iteration(BaseModel):
    """One iteration of a repeat step, as it ended."""

    n: int
    ok: bool
    preview: str | None = None
    error: str | None = None
    until: bool = Field(False, description="whether `until` held after it")
    at: datetime


class PlanRecord(BaseModel):
    """A definition made at run time, as its check found it."""

    definition: dict[str, Any] | None = Field(None, description="the checked plan, tools pinned")
    errors: list[str] = Field(default_factory=list)
    digest: str | None = None


# A run holds one record per step and for_each item, each changed field by field as the unit
# moves: a plain slotted dataclass holds its fields in place of a model's dict and set of fields
# given (a third of the memory, so a parked run costs its worker less), making one is a plain
# __init__ (a model validated each field: 20 times the time) and setting a field a plain store.
# Pydantic still checks and writes it inside RunData (continue-as-new, resume); the rules set its
# fields, typed, and mypy checks them.
@dataclass(slots=True)
class StepRecord:
    id: str
    state: StepState = StepState.PENDING
    phase: Phase = "pending"
    round: int = 0
    attempts: int = 0
    args: Any = None
    # Where in `args` the activity resolves something.
    slots: list[Slot] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    reason: str | None = None
    output: Any = None
    has_output: bool = False
    preview: str | None = None
    artifact: dict[str, Any] | None = None
    gate: GateRecord | None = None
    # An invocation's result not yet acted on.
    result: Result | None = None
    compensation: CompensationView | None = None
    completed_seq: int = 0
    # Principals who voted to go on at this step's gates.
    approvers_seen: list[str] = field(default_factory=list)
    # for_each: the items (each a unit of its own, id `<step>.<index>`), and for an item its
    # index and value.
    items: list[StepRecord] | None = None
    index: int | None = None
    item: Any = None
    # repeat: iterations so far, the output before the current one, when the next one is due and
    # when the whole loop must end.
    iteration: int = 0
    iterations: list[Iteration] = field(default_factory=list)
    previous: Any = None
    next_at: datetime | None = None
    deadline: datetime | None = None
    plan: PlanRecord | None = None
    # The bytes of the run's inline budget held for this unit's call while it is out, and the
    # bytes its output and preview take in the state once back.
    reserved: int = 0
    kept: int = 0
    agent: AgentRecord | None = None

    @property
    def call_out(self) -> bool:
        """Its tool call, child run, plan check or list read (or anything of its agent loop) is
        out and not yet back."""
        if self.agent is not None and self.phase == "agent":
            return self.agent.out
        return (self.phase in ("running", "loading") and self.result is None) or (
            self.phase == "planning" and self.plan is None
        )

    def gates(self) -> list[GateRecord]:
        """Its own gate and its agent calls' gates."""
        own = [self.gate] if self.gate is not None else []
        if self.agent is None:
            return own
        return own + [c.gate for c in self.agent.calls if c.gate is not None]


class Stop(BaseModel):
    """Why the run stops starting work: a failure, or a cancel (by a gate or a person)."""

    kind: Literal["failed", "cancelled"]
    message: str
    by: str | None = None


class ChildGates(BaseModel):
    """The open gates of a child pipeline run, as the child last reported them."""

    step: str
    workflow_id: str
    gates: list[GateSummary] = Field(default_factory=list)


class Trail(BaseModel):
    """A run's audit trail, each entry numbered as it is recorded."""

    audit: list[AuditEntry] = Field(default_factory=list)
    audit_total: int = 0

    def record(self, entry: AuditEntry) -> None:
        """Append to the audit trail, numbering the entry."""
        self.audit_total += 1
        self.audit.append(entry.model_copy(update={"seq": self.audit_total}))


class RunData(Trail):
    """Everything a run knows about itself; continue-as-new carries it whole."""

    steps: dict[str, StepRecord]
    started_at: datetime
    paused: bool = False
    stop: Stop | None = None
    closed: RunState | None = None
    error: str | None = None
    output: Any = None
    revision: int = 0
    seq: int = Field(0, description="completion order of succeeded steps, for compensation")
    archives: list[AuditArchiveRef] = Field(default_factory=list)
    archiving: int = Field(0, description="entries at the head of `audit` being archived now")
    children: dict[str, ChildGates] = Field(default_factory=dict)
    generation: int = Field(0, description="how many times the run continued as new")
    inline_bytes: int = Field(0, description="bytes of outputs and previews kept in the state")
    reserved_bytes: int = Field(0, description="bytes held for the calls out")
    grants: list[Grant] = Field(default_factory=list, description="standing grants at call gates")

    def __setattr__(self, name: str, value: Any) -> None:
        # The rules set a run's fields on every event (its revision, its byte counts, ...): a
        # plain store, where pydantic's assignment also recorded each field set, in a set that
        # grew with every cached run. Nothing reads which fields were set (what continues as
        # new leaves out the defaults), and assignment is not validated either way.
        if name in _RUN_FIELDS:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def step(self, step_id: str) -> StepRecord:
        return self.steps[step_id]

    def archive_due(self) -> list[AuditEntry]:
        """The oldest chunk to move out, once the trail in state has grown past its bound."""
        if self.archiving or len(self.audit) < AUDIT_KEEP + AUDIT_CHUNK:
            return []
        return self.audit[:AUDIT_CHUNK]

    def units(self) -> list[StepRecord]:
        """Every unit of work: each step, and the items of for_each steps."""
        out: list[StepRecord] = []
        for s in self.steps.values():
            out.append(s)
            if s.items:
                out.extend(s.items)
        return out

    def unit(self, unit_id: str) -> StepRecord | None:
        """A step by id, or an item by `<step>.<index>`."""
        step_id, _, index = unit_id.partition(".")
        step = self.steps.get(step_id)
        if step is None or not index:
            return step
        if step.items is None or not _number(index) or int(index) >= len(step.items):
            return None
        return step.items[int(index)]

    def gates(self) -> list[tuple[StepRecord, GateRecord]]:
        """Every unit's latest gate and every agent call's gate, with the unit it belongs to."""
        # Every pass of the rules asks this several times: units without a gate or an agent
        # loop (most of them) are passed over without a list made for each.
        return [
            (u, g)
            for u in self.units()
            if u.gate is not None or u.agent is not None
            for g in u.gates()
        ]

    def gate(self, gate_id: str) -> tuple[StepRecord, GateRecord] | None:
        """The gate `gate_id` names, with its unit: a step's, an item's or an agent call's."""
        step_id, _, rest = gate_id.partition(".")
        if rest.startswith("call-"):
            step = self.steps.get(step_id)
            n = rest.removeprefix("call-")
            record = step.agent if step is not None else None
            call = record.call(int(n)) if record is not None and _number(n) else None
            if step is None or call is None or call.gate is None:
                return None
            return step, call.gate
        unit = self.unit(gate_id)
        return (unit, unit.gate) if unit is not None and unit.gate is not None else None

    def in_flight(self) -> list[StepRecord]:
        """Units whose tool call, child run or plan check is out and not yet back."""
        return [u for u in self.units() if u.call_out]


_RUN_FIELDS = frozenset(RunData.model_fields)


def _number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes `²`, which `int` refuses."""
    return text.isascii() and text.isdigit()


def new_state(definition: Definition, now: datetime) -> RunData:
    return RunData(steps={s.id: StepRecord(id=s.id) for s in definition.steps}, started_at=now)
