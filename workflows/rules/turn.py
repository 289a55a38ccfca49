"""One pass of the run's rules: what it reads (the run's facts, its snapshot, the time), the
effects it asks the workflow shell to carry out, and the scope a unit's references read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activities.models import AgentCheck, ArtifactRef, Slot, TranscriptWrite
from workflows.language import expr
from workflows.language.definition import Definition
from workflows.language.limits import DEFAULT_INLINE_BYTES, PREVIEW_BYTES
from workflows.language.refs import Scope
from workflows.models import Principal
from workflows.rules.gates import Notify
from workflows.rules.state import RunData, StepRecord


@dataclass(frozen=True, slots=True)
class RunContext:
    """Facts of the run that references and auto-approval read."""

    workflow_id: str
    run_id: str
    pipeline: str
    started_at: str
    input: dict[str, Any] = field(default_factory=dict)
    requester: Principal | None = None
    approval_mode: str = "manual"

    def scope(self, state: RunData, *, lenient: bool = False) -> Scope:
        return Scope(
            self.input,
            {sid: s.output for sid, s in state.steps.items() if s.has_output},
            {sid: s.state.value for sid, s in state.steps.items()},
            {
                "workflow_id": self.workflow_id,
                "run_id": self.run_id,
                "requester": self.requester.principal if self.requester else None,
                "pipeline": self.pipeline,
                "started_at": self.started_at,
            },
            lenient=lenient,
            offloaded={
                sid: s.artifact for sid, s in state.steps.items() if s.has_output and s.artifact
            },
            responses={
                sid: s.gate.response
                for sid, s in state.steps.items()
                if s.gate is not None and s.gate.response is not None
            },
        )


@dataclass(frozen=True)
class Invoke:
    """Call a unit's tool (or child pipeline, or approved plan) with these arguments."""

    step: str
    round: int
    args: dict[str, Any]
    slots: list[Slot] = field(default_factory=list)
    iteration: int = 0
    plan: dict[str, Any] | None = None
    # What the run can keep of the call's output and preview (RUN_INLINE_BYTES).
    inline_bytes: int = DEFAULT_INLINE_BYTES
    preview_bytes: int = PREVIEW_BYTES


@dataclass(frozen=True)
class CheckPlan:
    """Check a definition made at run time (in an activity) before it may run."""

    step: str
    definition: Any
    allowed_tools: list[str]
    max_steps: int
    allowed_task_queues: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoadList:
    """Read a for_each step's list out of a step output kept in the artifact store (an activity
    reads the store, never workflow code); it comes back as the unit's result."""

    step: str
    round: int
    artifact: ArtifactRef
    path: list[str]


@dataclass(frozen=True)
class AskModel:
    """One model turn of an agent step: llm.chat with the conversation and the tools offered."""

    step: str
    turn: int
    args: dict[str, Any]
    slots: list[Slot] = field(default_factory=list)


@dataclass(frozen=True)
class CheckCalls:
    """Check what an agent's model asked for (arguments, risks, a final reply) in an activity."""

    step: str
    turn: int
    check: AgentCheck


@dataclass(frozen=True)
class CallTool:
    """Run one call an agent's model asked for, as decided: its tool's own activity."""

    step: str
    n: int
    tool: str
    args: dict[str, Any]
    slots: list[Slot] = field(default_factory=list)
    local: bool = False
    inline_bytes: int = DEFAULT_INLINE_BYTES
    preview_bytes: int = PREVIEW_BYTES


@dataclass(frozen=True)
class StoreTranscript:
    """Write an agent's earlier messages (a chunk), or its whole transcript, to the store."""

    step: str
    write: TranscriptWrite


@dataclass(frozen=True)
class StopCalls:
    """Cancel what an agent step that ended still has out."""

    step: str


AgentEffect = AskModel | CheckCalls | CallTool | StoreTranscript | StopCalls
Effect = (
    Invoke
    | Notify
    | CheckPlan
    | LoadList
    | AskModel
    | CheckCalls
    | CallTool
    | StoreTranscript
    | StopCalls
)
# The effects that put a call out, each reporting back to its unit (or its agent loop).
CALLS = (Invoke, CheckPlan, LoadList, AskModel, CheckCalls, CallTool, StoreTranscript)


@dataclass
class Turn:
    """One pass of the rules: the state, the run's snapshot and facts, the time, the effects."""

    state: RunData
    d: Definition
    ctx: RunContext
    now: datetime
    effects: list[Effect] = field(default_factory=list)
    hold: bool = False
    # Running units counted once during this pass (key "" for the run, a step id for its
    # items), then kept true as each unit moves (scheduler._recount): a pass over many units
    # counts once instead of once per unit.
    counts: dict[str, int] = field(default_factory=dict)

    def scope(self, unit: StepRecord, **local: Any) -> Scope:
        return unit_scope(self.state, self.d, self.ctx, unit, **local)


def unit_scope(
    state: RunData, d: Definition, ctx: RunContext, unit: StepRecord, **local: Any
) -> Scope:
    """What a unit's references read: the run's scope, plus its item and index (a for_each
    item), or the previous output and the iteration (a repeat step), plus `local`."""
    values: dict[str, Any] = {}
    if unit.index is not None:
        values.update(item=unit.item, index=unit.index)
    if d.step(step_of(unit)).repeat is not None:
        values.update(previous=unit.previous, iteration=unit.iteration + 1)
    return ctx.scope(state).with_local(**{**values, **local})


def step_of(unit: StepRecord) -> str:
    return unit.id.partition(".")[0]


def truthy(condition: str, scope: Scope) -> bool:
    return expr.truthy(expr.evaluate(expr.parse(condition), scope.lookup))
