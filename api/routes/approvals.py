"""The caller's approval inbox across runs, and many decisions in one request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import PayloadConverter

from activities.access import PRINCIPAL_NAME_PATTERN
from api.auth import Caller
from api.decisions import submit
from api.delegation import acting_for, delegations_to
from api.deps import CallerDep, ClientDep, SettingsDep, StateDep
from api.errors import ApiError, invalid
from api.guards import OffloadDep, StrictJsonRoute
from api.schemas.approvals import (
    BatchCreate,
    BatchItem,
    BatchPublic,
    BatchResult,
    Inbox,
    InboxItem,
    inbox_order,
)
from api.schemas.common import ERRORS
from api.scope import listed_runs
from api.state import ApiState
from api.status import query_status
from api.visibility import MAX_CURSOR_CHARS, read_page, runs_query
from workflows.contract import MEMO_GATES, SA_PIPELINE
from workflows.language.definition import PRIORITIES, Priority
from workflows.language.limits import MAX_NAME_CHARS
from workflows.language.types import PIPELINE_NAME_PATTERN
from workflows.language.validation import Issue
from workflows.models import Delegation, GateSummary, VoteLine
from workflows.rules.votes import principals_of

router = APIRouter(
    prefix="/approvals", tags=["approvals"], responses=ERRORS, route_class=StrictJsonRoute
)

# Bounds on one inbox request: runs read per page, and fallback status queries in flight.
INBOX_PAGE_MAX = 500
QUERY_CONCURRENCY = 8
BATCH_CONCURRENCY = 16
# All one batch may take; items still waiting for their run's lane then report 503 run_busy.
BATCH_TIMEOUT = timedelta(seconds=30)

_PRIORITY_NAMES: dict[str, Priority] = {p: p for p in PRIORITIES}
# Every priority once, comma-separated, with room for a space after each comma.
PRIORITY_PARAM_MAX = len(", ".join(PRIORITIES))
# What the parameter may hold, stated in the OpenAPI document: names, commas, spaces.
_ONE = "(" + "|".join(PRIORITIES) + ")"
PRIORITY_PATTERN = f"^ *{_ONE} *(, *{_ONE} *)*$"


def may_decide(
    gate: GateSummary,
    caller: Caller,
    delegations: Sequence[Delegation] = (),
    now: datetime | None = None,
) -> bool:
    """The caller is among the approvers and has not voted yet (a second vote is refused), or
    the gate names a user who delegates to the caller at `now` and has not voted."""
    if caller.may_decide(gate.approvers, gate.voted):
        return True
    return bool(acting_for(gate.approvers, gate.voted, delegations, now or datetime.now(UTC)))


def parse_priorities(value: str | None) -> frozenset[Priority] | None:
    """`urgent` or `urgent,high` as a set; None (no filter) when the parameter is absent."""
    if value is None:
        return None
    wanted: set[Priority] = set()
    for name in (n.strip() for n in value.split(",")):
        if name not in _PRIORITY_NAMES:
            raise invalid(
                [Issue("query.priority", f"{name!r} is not one of {', '.join(PRIORITIES)}")],
                "priority is not a comma-separated list of priorities",
            )
        wanted.add(_PRIORITY_NAMES[name])
    return frozenset(wanted)


# (workflow id, pipeline, the run's gates memo) for each run of a page.
RunLines = tuple[str, str, list[GateSummary]]


def page_items(
    runs: list[RunLines],
    caller: Caller,
    wanted: frozenset[Priority] | None,
    requester: str | None = None,
    delegations: Sequence[Delegation] = (),
) -> list[InboxItem]:
    """The page's gates the caller may decide (itself, or for an absent principal who delegates
    to it), of the wanted priorities (and runs of `requester`, when named), in inbox order. A
    child run's gate relayed in its parent's memo names the child (where decisions go); when the
    child's own line is on the page too, that one is kept and the copy dropped."""
    items: dict[tuple[str, str], InboxItem] = {}
    now = datetime.now(UTC)
    lines = [(wid, pipeline, g) for wid, pipeline, gates in runs for g in gates]
    # Own lines first, so a relayed copy never hides the child's own (its pipeline is right).
    lines.sort(key=lambda line: line[2].workflow_id not in (None, line[0]))
    for wid, pipeline, g in lines:
        target = g.workflow_id or wid
        if wanted is not None and g.priority not in wanted:
            continue
        if requester is not None and g.requester != requester:
            continue
        if (target, g.gate) not in items and may_decide(g, caller, delegations, now):
            items[(target, g.gate)] = _item(target, pipeline, g)
    return sorted(items.values(), key=inbox_order)


def _item(workflow_id: str, pipeline: str, g: GateSummary) -> InboxItem:
    return InboxItem(
        workflow_id=workflow_id,
        pipeline=pipeline,
        gate=g.gate,
        stage=g.stage,
        review=g.review,
        subject=g.subject,
        subject_truncated=g.subject_truncated,
        digest=g.digest,
        opened_at=g.opened_at,
        deadline=g.deadline,
        priority=g.priority,
        actions=g.actions,
        approvers=g.approvers,
        requester=g.requester,
        quorum=g.quorum,
        approvals=g.approvals,
        votes=g.votes,
        votes_total=g.votes_total,
        form=g.form,
    )


async def gates_from_status(
    client: Client, workflow_id: str
) -> tuple[str, list[GateSummary]] | None:
    """Open gates of a run that keeps no gates memo (started before runs published one)."""
    try:
        status = await query_status(client, workflow_id)
    except ApiError as err:
        if err.status == 503:
            raise
        return None  # closed or gone since the visibility read: nothing to decide
    requester = status.requester.principal if status.requester is not None else None
    gates = [
        GateSummary(
            **g.model_dump(exclude={"approvals", "rejections", "response"}),
            voted=[v.actor for v in (*g.approvals, *g.rejections)],
            requester=requester,
            votes=[
                VoteLine(principal=v.actor, action=v.action)
                for v in sorted((*g.approvals, *g.rejections), key=lambda v: v.at)
            ],
            votes_total=g.approvals_total + g.rejections_total,
            approvals=g.approvals_total,
        )
        for g in status.open_gates
    ]
    return status.pipeline, gates


@router.get("", response_model=Inbox)
async def inbox(
    caller: CallerDep,
    client: ClientDep,
    offload: OffloadDep,
    settings: SettingsDep,
    page_size: Annotated[
        int, Query(ge=1, le=INBOX_PAGE_MAX, description="runs read for this page")
    ] = 200,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
    priority: Annotated[
        str | None,
        Query(
            max_length=PRIORITY_PARAM_MAX,
            pattern=PRIORITY_PATTERN,
            description="only gates of these priorities: `urgent`, or a list `urgent,high`",
        ),
    ] = None,
    pipeline: Annotated[
        str | None,
        Query(
            max_length=MAX_NAME_CHARS,
            pattern=PIPELINE_NAME_PATTERN,
            description="only runs of this pipeline (its name, exactly)",
        ),
    ] = None,
    requester: Annotated[
        str | None,
        Query(
            max_length=MAX_NAME_CHARS,
            pattern=PRINCIPAL_NAME_PATTERN,
            description="only runs this principal started (its name, exactly)",
        ),
    ] = None,
) -> Inbox:
    """Open gates the caller may decide (of one pipeline's runs, or of runs one principal
    started, when asked): one visibility read per page of runs (newest runs first, as
    visibility lists them), the gates coming from each run's memo. Within a page the
    most urgent gate comes first, then the soonest deadline (none last), then the oldest; the
    order does not carry across pages (visibility cannot sort by a memo). A delegate also sees
    the gates that name, as a user, a principal the address book says is away and delegates to
    them now."""
    wanted = parse_priorities(priority)
    delegated = await delegations_to(settings, caller.principal, datetime.now(UTC))
    absent = [principals_of(d.principal, ())[0] for d in delegated]
    query = runs_query(awaiting=[*caller.principals, *absent], running_only=True, pipeline=pipeline)
    executions, next_cursor = await read_page(client, query, page_size, cursor)
    memos = [(e, e.raw_info.memo.fields.get(MEMO_GATES)) for e in executions]
    kept = [(e, m) for e, m in memos if m is not None]
    runs = [(e.id, e.typed_search_attributes.get(SA_PIPELINE) or "") for e, _ in kept]
    payloads = [m for _, m in kept]
    codec = client.data_converter.payload_codec
    if codec and payloads:
        payloads = await codec.decode(payloads)
    # Converting memos is the page's heaviest CPU work (10,000 lines: 0.2 s): off the loop.
    converter = client.data_converter.payload_converter
    found, unreadable = await offload.run(read_memos, converter, runs, payloads)
    older = [e.id for e, m in memos if m is None] + unreadable
    limit = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def fallback(workflow_id: str) -> RunLines | None:
        async with limit:
            got = await gates_from_status(client, workflow_id)
        return (workflow_id, *got) if got else None

    found += [f for f in await asyncio.gather(*(fallback(i) for i in older)) if f]
    items = await offload.run(page_items, found, caller, wanted, requester, delegated)
    return Inbox(items=items, next_cursor=next_cursor)


def read_memos(
    converter: PayloadConverter, runs: list[tuple[str, str]], payloads: Sequence[Payload]
) -> tuple[list[RunLines], list[str]]:
    """Each run's gates memo as inbox lines, and the runs whose memo cannot be read (written by
    hand, or by code this API does not know): their status query tells their gates instead."""
    found: list[RunLines] = []
    unreadable: list[str] = []
    for (workflow_id, pipeline), payload in zip(runs, payloads, strict=True):
        try:
            (gates,) = converter.from_payloads([payload], [list[GateSummary]])
        except (KeyError, RuntimeError, ValueError):
            unreadable.append(workflow_id)
        else:
            found.append((workflow_id, pipeline, gates))
    return found, unreadable


@router.post("/batch", response_model=BatchPublic)
async def batch(
    caller: CallerDep, client: ClientDep, state: StateDep, body: BatchCreate
) -> BatchPublic:
    """Apply each decision on its own; one failure does not stop the others. Items for the same
    run are applied in the order given, different runs concurrently, each through its run's lane
    like a single decision. An item that could not be applied in time reports its own 503; only
    when every item did is the whole answer a 503 with Retry-After (nothing was applied)."""
    by_run: dict[str, list[int]] = {}
    for i, item in enumerate(body.items):
        by_run.setdefault(item.workflow_id, []).append(i)
    results: list[BatchResult | None] = [None] * len(body.items)
    unavailable: list[ApiError] = []
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)
    deadline = asyncio.get_running_loop().time() + BATCH_TIMEOUT.total_seconds()
    listed = await listed_runs(client, by_run)

    async def run_items(indexes: list[int]) -> None:
        async with limit:
            for i in indexes:
                item = body.items[i]
                try:
                    run = listed.get(item.workflow_id)
                    results[i] = await _apply_one(client, state, caller, item, deadline, run)
                except ApiError as err:
                    unavailable.append(err)
                    results[i] = _failed(item, err)

    await asyncio.gather(*(run_items(ix) for ix in by_run.values()))
    if len(unavailable) == len(body.items):
        raise unavailable[0]
    return BatchPublic(results=[r for r in results if r is not None])


async def _apply_one(
    client: Client,
    state: ApiState,
    caller: Caller,
    item: BatchItem,
    deadline: float,
    listed: str | None,
) -> BatchResult:
    """The item's result; a 503 (not applied in time, Temporal away) is raised to the batch."""
    try:
        view = await submit(
            client,
            state.lanes,
            item.workflow_id,
            item.gate,
            item,
            caller,
            channel="batch",
            settings=state.settings,
            deadline=deadline,
            listed=listed,
        )
    except ApiError as err:
        if err.status == 503:
            raise
        return _failed(item, err)
    return BatchResult(
        workflow_id=item.workflow_id,
        gate=item.gate,
        ok=True,
        status_code=200,
        gate_state=view.state,
    )


def _failed(item: BatchItem, err: ApiError) -> BatchResult:
    return BatchResult(
        workflow_id=item.workflow_id,
        gate=item.gate,
        ok=False,
        status_code=err.status,
        error={"code": err.code, "message": err.message},
    )
