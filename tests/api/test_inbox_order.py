"""The inbox's order (priority, deadline, age), its priority filter and the terminal client's view.

Runs whose gates carry a priority are parked on a task queue no worker polls, with the gates memo
and search attributes a waiting run publishes: the real server lists them and the real API reads
them, whatever priority the workflow code sets today.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.config import Settings
from api.auth import Caller
from api.routes.approvals import page_items, read_memos
from tests.api.conftest import StartRun
from tests.api.helpers import eventually, wait_state
from tests.api.test_cli import cli
from workflows.client import make_data_converter
from workflows.contract import MEMO_GATES, SA_AWAITING, SA_PIPELINE, SA_STATE, WORKFLOW_TYPE
from workflows.language.definition import Priority
from workflows.models import GateSummary

Auth = Callable[[str], dict[str, str]]
Park = Callable[[str, list[GateSummary]], Awaitable[str]]
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def line(
    gate: str,
    priority: Priority,
    *,
    deadline: int | None,
    opened: int,
    approvers: tuple[str, ...] = ("role:ops",),
    workflow_id: str | None = None,
    review: str | None = None,
) -> GateSummary:
    """An open gate's inbox line; `deadline` and `opened` are minutes after T0."""
    return GateSummary(
        gate=gate,
        stage="before",
        round=1,
        approvers=list(approvers),
        actions=["approve", "reject"],
        voted=[],
        digest="sha256:" + "0" * 64,
        review=review,
        opened_at=T0 + timedelta(minutes=opened),
        deadline=None if deadline is None else T0 + timedelta(minutes=deadline),
        priority=priority,
        workflow_id=workflow_id,
    )


def three_runs(role: str) -> dict[str, list[GateSummary]]:
    """Gates spread over three runs so that no run's gates are contiguous in the order."""
    who = (role,)
    return {
        "a": [
            line("a1", "normal", deadline=None, opened=60, approvers=who),
            line("a2", "urgent", deadline=180, opened=65, approvers=who),
        ],
        "b": [
            line("b1", "high", deadline=120, opened=0, approvers=who),
            line("b2", "urgent", deadline=150, opened=50, approvers=who),
            line("b3", "urgent", deadline=None, opened=0, approvers=who),
        ],
        "c": [
            line("c1", "low", deadline=30, opened=0, approvers=who),
            line("c2", "normal", deadline=240, opened=60, approvers=who),
            line("c3", "normal", deadline=None, opened=0, approvers=who),
        ],
    }


# Urgent first, then the soonest deadline (none last), then the oldest gate.
ORDER = ["b2", "a2", "b3", "b1", "c2", "c3", "a1", "c1"]
OPS = Caller(principal="alice", roles=("ops",))


def test_page_items_sorted_by_priority_then_deadline_then_age() -> None:
    """Gates from several runs come out urgent first, soonest deadline next, oldest last."""
    runs = [(f"wf-{k}", "p", gates) for k, gates in three_runs("role:ops").items()]
    assert [i.gate for i in page_items(runs, OPS, None)] == ORDER
    assert [i.gate for i in page_items(runs[::-1], OPS, None)] == ORDER


def test_page_items_filtered_keeps_only_wanted_priorities() -> None:
    """A priority filter drops the other gates and keeps the order of those it lets through."""
    runs = [(f"wf-{k}", "p", gates) for k, gates in three_runs("role:ops").items()]
    got = page_items(runs, OPS, frozenset({"high", "low"}))
    assert [(i.gate, i.priority) for i in got] == [("b1", "high"), ("c1", "low")]


def test_page_items_child_gate_names_child_once() -> None:
    """A child run's gate relayed in its parent's memo is listed under the child, and only once
    when the child's own line is on the page as well (the child's pipeline then wins)."""
    relayed = line("ship", "high", deadline=None, opened=0, workflow_id="wf-child")
    own = line("ship", "high", deadline=None, opened=0)
    parent = ("wf-parent", "outer", [relayed])
    alone = page_items([parent], OPS, None)
    assert [(i.workflow_id, i.gate, i.pipeline) for i in alone] == [("wf-child", "ship", "outer")]
    both = page_items([parent, ("wf-child", "inner", [own])], OPS, None)
    assert [(i.workflow_id, i.gate, i.pipeline) for i in both] == [("wf-child", "ship", "inner")]


def test_page_items_naive_and_aware_times_sorted_without_error() -> None:
    """A memo time without a zone sorts beside zoned ones instead of failing the whole page."""
    naive = line("n", "normal", deadline=None, opened=0)
    naive.opened_at = naive.opened_at.replace(tzinfo=None)
    aware = line("z", "normal", deadline=None, opened=-600)
    got = page_items([("wf-1", "p", [naive, aware])], OPS, None)
    assert {i.gate for i in got} == {"n", "z"}


def test_read_memos_unreadable_memo_left_to_the_status_query() -> None:
    """A memo that is not a list of inbox lines marks its run for the status query instead of
    failing the page; the runs around it are read."""
    converter = make_data_converter(Settings(_env_file=None)).payload_converter
    good = [line("ok", "high", deadline=None, opened=0)]
    payloads = converter.to_payloads([good, {"gate": 1}, good])
    payloads.append(Payload(metadata={"encoding": b"binary/unknown"}, data=b"x"))
    runs = [("wf-1", "p"), ("wf-bad", "p"), ("wf-2", "q"), ("wf-odd", "p")]
    found, unreadable = read_memos(converter, runs, payloads)
    assert [(wid, pipeline, gates) for wid, pipeline, gates in found] == [
        ("wf-1", "p", good),
        ("wf-2", "q", good),
    ]
    assert unreadable == ["wf-bad", "wf-odd"]


@pytest.fixture
async def park(client: Client, team: str) -> AsyncIterator[Park]:
    """Start a PipelineWorkflow no worker runs, showing `gates` as a waiting run does; every
    parked run is terminated after the test."""
    parked: list[WorkflowHandle[Any, Any]] = []
    idle_queue = f"idle-{uuid.uuid4()}"

    async def go(key: str, gates: list[GateSummary]) -> str:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            {},
            id=f"parked-{key}-{uuid.uuid4().hex[:8]}",
            task_queue=idle_queue,
            memo={MEMO_GATES: gates},
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_STATE, "waiting"),
                    SearchAttributePair(SA_PIPELINE, f"pipe_{key}"),
                    SearchAttributePair(SA_AWAITING, [f"role:{team}"]),
                ]
            ),
        )
        parked.append(handle)
        return handle.id

    yield go
    for handle in parked:
        await handle.terminate(reason="test over")


async def park_three(park: Park, team: str) -> dict[str, str]:
    """The three runs of `three_runs` parked; gate id -> its run's workflow id."""
    where: dict[str, str] = {}
    for key, gates in three_runs(f"role:{team}").items():
        workflow_id = await park(key, gates)
        where.update({g.gate: workflow_id for g in gates})
    return where


async def read_inbox(http: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> Any:
    r = await http.get("/approvals", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_inbox_lists_parked_gates_in_priority_order(
    http: httpx.AsyncClient, park: Park, team: str, as_: Auth
) -> None:
    """Through the API, gates of several runs come back urgent first, then by deadline (none
    last), then oldest first, each with its run, priority and deadline."""
    where = await park_three(park, team)
    page = await eventually(
        lambda: read_inbox(http, as_("alice")), lambda p: len(p["items"]) == 8, "all listed"
    )
    items = page["items"]
    assert [i["gate"] for i in items] == ORDER
    assert all(i["workflow_id"] == where[i["gate"]] for i in items)
    first = items[0]
    assert (first["priority"], first["deadline"]) == ("urgent", "2030-01-01T11:30:00Z")
    assert (items[2]["priority"], items[2]["deadline"]) == ("urgent", None)
    assert await read_inbox(http, as_("vic")) == {"items": [], "next_cursor": None}


async def test_inbox_priority_filter_single_list_and_paged(
    http: httpx.AsyncClient, park: Park, team: str, as_: Auth
) -> None:
    """`priority=urgent` and `priority=urgent,high` keep only those gates in order, and paging
    one run at a time with the filter still reaches each of them once."""
    await park_three(park, team)
    await eventually(
        lambda: read_inbox(http, as_("alice")), lambda p: len(p["items"]) == 8, "all listed"
    )
    urgent = await read_inbox(http, as_("alice"), priority="urgent")
    assert [i["gate"] for i in urgent["items"]] == ["b2", "a2", "b3"]
    two = await read_inbox(http, as_("alice"), priority="urgent, high")
    assert [i["gate"] for i in two["items"]] == ["b2", "a2", "b3", "b1"]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params = {"page_size": 1, "priority": "normal", **({"cursor": cursor} if cursor else {})}
        page = await read_inbox(http, as_("alice"), **params)
        assert len({i["workflow_id"] for i in page["items"]}) <= 1
        seen += [i["gate"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == ["a1", "c2", "c3"]
    assert cursor is None, "cursors never end"


@pytest.mark.parametrize("value", ["soon", "urgent,", "", "URGENT", "urgent;high", "high," * 9])
async def test_inbox_priority_bad_value_unprocessable(
    http: httpx.AsyncClient, as_: Auth, value: str
) -> None:
    """An unknown, empty or over-long priority filter is a 422 naming the parameter."""
    r = await http.get("/approvals", params={"priority": value}, headers=as_("alice"))
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["query.priority"]


async def test_inbox_real_runs_ordered_by_deadline_none_last(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str
) -> None:
    """Runs of real pipelines at their gates come back by deadline (a gate without a timeout
    last), at the default priority, whichever was started first."""

    def timed(timeout: str | None) -> dict[str, Any]:
        approval: dict[str, Any] = {"approvers": [f"role:{team}"]}
        if timeout:
            approval["timeout"] = timeout
        step = {"id": "ship", "tool": "test.echo", "with": {"x": 1}, "approval": approval}
        return {"name": f"timed_{timeout or 'never'}", "steps": [step]}

    ids = {t: await start_run(timed(t), {}, who="root") for t in (None, "2h", "1h")}
    for workflow_id in ids.values():
        await wait_state(http, workflow_id, "waiting", as_("vic"))
    page = await eventually(
        lambda: read_inbox(http, as_("alice")), lambda p: len(p["items"]) == 3, "all listed"
    )
    items = page["items"]
    assert [i["workflow_id"] for i in items] == [ids["1h"], ids["2h"], ids[None]]
    assert [i["priority"] for i in items] == ["normal"] * 3
    assert items[0]["deadline"] is not None and items[2]["deadline"] is None


async def test_cli_inbox_shows_priority_deadline_in_order_and_filters(
    http: httpx.AsyncClient, park: Park, team: str, as_: Auth, keys: dict[str, str]
) -> None:
    """`stepgate inbox` prints priority and deadline columns in the API's order, across pages of
    one run each too; `--priority high` keeps the high gate alone, and a bad filter exits
    non-zero with the API's message."""
    where = await park_three(park, team)
    await eventually(
        lambda: read_inbox(http, as_("alice")), lambda p: len(p["items"]) == 8, "all listed"
    )
    url = str(http.base_url).rstrip("/")
    code, out, err = await cli(url, keys["alice"], "inbox")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["PRIORITY", "DEADLINE", "RUN", "REQUESTER", "VOTES", "GATE"]
    assert [r.split()[-2] for r in rows] == ORDER
    assert rows[0].split()[:4] == ["urgent", "2030-01-01", "11:30Z", where["b2"]]
    assert rows[2].split()[:3] == ["urgent", "-", where["b3"]]
    code, paged, err = await cli(url, keys["alice"], "inbox", "--page-size", "1")
    assert code == 0, err
    assert paged == out
    code, out, err = await cli(url, keys["alice"], "inbox", "--priority", "high")
    assert code == 0, err
    assert [r.split()[-2] for r in out.splitlines()[1:]] == ["b1"]
    code, out, err = await cli(url, keys["alice"], "inbox", "--priority", "soon")
    assert code != 0 and "query.priority" in err and out == ""


async def test_cli_inbox_control_characters_shown_as_marks(
    http: httpx.AsyncClient, park: Park, team: str, as_: Auth, keys: dict[str, str]
) -> None:
    """A review carrying terminal escapes, a bidi override or a line break (text a run's input
    can fill) reaches the approver's terminal as `?` marks, on the gate's own line."""
    hostile = "fine\x1b[2J\x1b]0;pwned\x07\u202eevil\nFAKE urgent line"
    gate = line("g", "high", deadline=None, opened=0, approvers=(f"role:{team}",), review=hostile)
    await park("esc", [gate])
    await eventually(
        lambda: read_inbox(http, as_("alice")), lambda p: len(p["items"]) == 1, "listed"
    )
    url = str(http.base_url).rstrip("/")
    code, out, err = await cli(url, keys["alice"], "inbox")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    header, row = out.splitlines()
    assert header.startswith("PRIORITY")
    assert row.endswith("g (before) — fine?[2J?]0;pwned??evil?FAKE urgent line")
