"""A run's lists a page at a time: its steps, a for_each step's items, a repeat step's iterations
and its gates. The status shows the latest of each (bounded whatever the run's size); these
routes return every one, each page at most `limit` entries and 1 MiB, `next_cursor` leading on."""

from __future__ import annotations

from typing import Annotated, get_args

from fastapi import APIRouter, Path, Query

from api.deps import ClientDep, ReaderDep
from api.pages import page
from api.schemas.common import ERRORS, WorkflowIdPath
from api.schemas.workflows import (
    CallsPublic,
    GatesPublic,
    ItemsPublic,
    IterationsPublic,
    StepsPublic,
)
from workflows.agent_models import CallState
from workflows.contract import StepState
from workflows.language.definition import STEP_ID_PATTERN
from workflows.language.limits import MAX_GATE_ID_CHARS, MAX_ID_CHARS
from workflows.models import GateState
from workflows.rules.bounds import PAGE_MAX
from workflows.rules.pages import PageInput

router = APIRouter(prefix="/workflows", tags=["workflows"], responses=ERRORS)

StepPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, pattern=STEP_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="entries at most (and 1 MiB)")]
NEXT = "the `next_cursor` of the page before"
NumberCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,12}$", description=NEXT)]
StepCursor = Annotated[
    str | None, Query(max_length=MAX_ID_CHARS, pattern=STEP_ID_PATTERN, description=NEXT)
]
UNIT_PATTERN = STEP_ID_PATTERN.removesuffix("$") + r"(\.(call-)?[0-9]{1,12})?$"
GateCursor = Annotated[
    str | None, Query(max_length=MAX_GATE_ID_CHARS, pattern=UNIT_PATTERN, description=NEXT)
]
CallStateQuery = Annotated[
    CallState | None,
    Query(description=f"only calls in this state: {', '.join(get_args(CallState))}"),
]
GateStateQuery = Annotated[
    GateState | None,
    Query(description=f"only gates in this state: {', '.join(get_args(GateState))}"),
]


@router.get("/{workflow_id}/steps", response_model=StepsPublic)
async def list_steps(
    _: ReaderDep,
    client: ClientDep,
    workflow_id: WorkflowIdPath,
    state: StepState | None = None,
    cursor: StepCursor = None,
    limit: Limit = 50,
) -> StepsPublic:
    """Every step of the run in definition order, each with its latest items or iterations and
    their counts (`?state=` keeps the steps in that state)."""
    inp = PageInput(of="steps", state=state, after=cursor, limit=limit)
    got = await page(client, workflow_id, inp)
    return StepsPublic(entries=got.steps, total=got.total, next_cursor=got.next_cursor)


@router.get("/{workflow_id}/steps/{step}/items", response_model=ItemsPublic)
async def list_items(
    _: ReaderDep,
    client: ClientDep,
    workflow_id: WorkflowIdPath,
    step: StepPath,
    state: StepState | None = None,
    cursor: NumberCursor = None,
    limit: Limit = 50,
) -> ItemsPublic:
    """Every item of a for_each step by index, each with its latest gate; 404 for a step that
    is not one, or whose list is not resolved yet."""
    inp = PageInput(of="items", step=step, state=state, after=cursor, limit=limit)
    got = await page(client, workflow_id, inp)
    return ItemsPublic(entries=got.items, total=got.total, next_cursor=got.next_cursor)


@router.get("/{workflow_id}/steps/{step}/iterations", response_model=IterationsPublic)
async def list_iterations(
    _: ReaderDep,
    client: ClientDep,
    workflow_id: WorkflowIdPath,
    step: StepPath,
    cursor: NumberCursor = None,
    limit: Limit = 50,
) -> IterationsPublic:
    """Every iteration of a repeat step, oldest first; 404 for a step that is not one."""
    inp = PageInput(of="iterations", step=step, after=cursor, limit=limit)
    got = await page(client, workflow_id, inp)
    return IterationsPublic(entries=got.iterations, total=got.total, next_cursor=got.next_cursor)


@router.get("/{workflow_id}/steps/{step}/calls", response_model=CallsPublic)
async def list_calls(
    _: ReaderDep,
    client: ClientDep,
    workflow_id: WorkflowIdPath,
    step: StepPath,
    state: CallStateQuery = None,
    cursor: NumberCursor = None,
    limit: Limit = 50,
) -> CallsPublic:
    """Every call an agent step's model asked for, in order: its tool, arguments (what ran),
    how it was decided and by whom, its gate, its end; 404 for a step that is not an agent."""
    inp = PageInput(of="calls", step=step, state=state, after=cursor, limit=limit)
    got = await page(client, workflow_id, inp)
    return CallsPublic(entries=got.calls, total=got.total, next_cursor=got.next_cursor)


@router.get("/{workflow_id}/gates", response_model=GatesPublic)
async def list_gates(
    _: ReaderDep,
    client: ClientDep,
    workflow_id: WorkflowIdPath,
    state: GateStateQuery = None,
    cursor: GateCursor = None,
    limit: Limit = 50,
) -> GatesPublic:
    """Each step's and item's latest gate with its subject, in the order of the steps (a child
    run's gates are paged under the child's id); `?state=open` keeps the open ones."""
    inp = PageInput(of="gates", state=state, after=cursor, limit=limit)
    got = await page(client, workflow_id, inp)
    return GatesPublic(entries=got.gates, total=got.total, next_cursor=got.next_cursor)
