"""Status reads: concurrent reads of one run share a round, a run standing still is not asked
again, and no read is older than its request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflow.v1 import PendingWorkflowTaskInfo, WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionResponse
from temporalio.client import Client, Interceptor, OutboundInterceptor, QueryWorkflowInput

from api.errors import ApiError
from api.status import Mark, StatusCache, StatusReads
from tests.api.conftest import StartRun
from tests.api.helpers import wait_state

Auth = Callable[[str], dict[str, str]]


class Queries(Interceptor):
    """Counts the status queries a client really sends; optionally holds each answer back until
    `release` is set, so a test can make a decision while an older answer is still on its way."""

    def __init__(self, hold: bool = False) -> None:
        self.sent = 0
        self.hold = hold
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        outer = self

        class Counting(OutboundInterceptor):
            async def query_workflow(self, input: QueryWorkflowInput) -> Any:
                outer.sent += 1
                answer = await super().query_workflow(input)
                if outer.hold and outer.sent == 1:
                    outer.answered.set()
                    await outer.release.wait()
                return answer

        return Counting(next)


async def joined_next_round(reads: StatusReads, workflow_id: str) -> None:
    """Yield to the event loop until a read waits for the run's next query."""
    for _ in range(100):
        pending = reads._runs.get(workflow_id)
        if pending is not None and pending.waiting is not None:
            return
        await asyncio.sleep(0)
    raise AssertionError("the late read never joined a round")


def counting(client: Client, hold: bool = False) -> tuple[Queries, Client]:
    """A client like `client` whose status queries `Queries` counts (and holds, if asked)."""
    queries = Queries(hold)
    config = client.config()
    config["interceptors"] = [queries]
    return queries, Client(**config)


@pytest.fixture
async def workflow_id(http: httpx.AsyncClient, start_run: StartRun, as_: Auth) -> str:
    """A run waiting at its gate."""
    started: str = await start_run()
    await wait_state(http, started, "waiting", as_("vic"))
    return started


async def test_simultaneous_reads_share_one_query(client: Client, workflow_id: str) -> None:
    """Twenty reads that arrive together cost one query and get the same answer."""
    queries, counted = counting(client)
    reads = StatusReads()
    bodies = await asyncio.gather(*(reads.json(counted, workflow_id) for _ in range(20)))
    assert queries.sent == 1
    assert len(set(bodies)) == 1
    status = json.loads(bodies[0])
    assert status["workflow_id"] == workflow_id and status["state"] == "waiting"


async def test_read_of_a_run_standing_still_sends_no_query(
    client: Client, workflow_id: str
) -> None:
    """Once a parked run's status was read, later reads get it again without asking the worker
    while the run's history does not move."""
    queries, counted = counting(client)
    reads = StatusReads()
    first = await reads.json(counted, workflow_id)
    again = [await reads.json(counted, workflow_id) for _ in range(5)]
    assert queries.sent == 1
    assert set(again) == {first}
    assert len(reads.cache) == 1


async def test_read_after_a_decision_on_a_remembered_run_sees_it(
    http: httpx.AsyncClient, client: Client, workflow_id: str, as_: Auth
) -> None:
    """A status remembered while the run stood still is not served once a decision moved the
    history: the first read begun after the decision returned asks again and sees it."""
    queries, counted = counting(client)
    reads = StatusReads()
    before = json.loads(await reads.json(counted, workflow_id))
    assert json.loads(await reads.json(counted, workflow_id)) == before
    assert queries.sent == 1
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"
    after = json.loads(await reads.json(counted, workflow_id))
    assert queries.sent == 2
    assert "release" in {g["gate"] for g in before["open_gates"]}
    assert "release" not in {g["gate"] for g in after["open_gates"]}
    assert any(a["action"] == "approve" and a["actor"] == "alice" for a in after["audit"])


async def test_read_of_a_foreign_workflow_not_found_and_not_queried(client: Client) -> None:
    """A workflow of another type answers 404, as an unknown id does, and is sent no query."""
    handle = await client.start_workflow(
        "ForeignJob", id=f"foreign-{uuid.uuid4()}", task_queue=f"nobody-{uuid.uuid4()}"
    )
    queries, counted = counting(client)
    try:
        with pytest.raises(ApiError) as raised:
            await StatusReads().json(counted, handle.id)
        assert (raised.value.status, raised.value.code) == (404, "not_found")
        assert queries.sent == 0
    finally:
        await handle.terminate(reason="test over")


def describe(*, pending: bool, length: int = 7) -> DescribeWorkflowExecutionResponse:
    """A describe answer as the server sends it, with or without a workflow task out."""
    info = WorkflowExecutionInfo(
        execution=WorkflowExecution(workflow_id="w", run_id="r1"), history_length=length
    )
    desc = DescribeWorkflowExecutionResponse(workflow_execution_info=info)
    if pending:
        desc.pending_workflow_task.CopyFrom(PendingWorkflowTaskInfo(attempt=1))
    return desc


def test_mark_absent_while_a_workflow_task_is_out() -> None:
    """While a workflow task is scheduled or running (events may wait in the server's buffer,
    uncounted), a run has no mark, so no remembered status can match it."""
    assert Mark.of(describe(pending=False)) == Mark("r1", 7)
    assert Mark.of(describe(pending=True)) is None


def test_cache_keeps_a_status_only_at_its_own_mark() -> None:
    """A remembered status is served for the same run and history length only."""
    cache = StatusCache()
    cache.put("w", Mark("r1", 7), b"{}")
    assert cache.get("w", Mark("r1", 7)) == b"{}"
    assert cache.get("w", Mark("r1", 8)) is None
    assert cache.get("w", Mark("r2", 7)) is None


def test_cache_keeps_the_later_of_two_answers() -> None:
    """An answer that comes back late, read at an older mark of the same run, does not replace
    one read at a newer mark."""
    cache = StatusCache()
    cache.put("w", Mark("r1", 9), b"new")
    cache.put("w", Mark("r1", 7), b"old")
    assert cache.get("w", Mark("r1", 9)) == b"new"
    cache.put("w", Mark("r2", 3), b"next run")
    assert cache.get("w", Mark("r2", 3)) == b"next run"


def test_cache_bounded_in_runs_and_bytes() -> None:
    """Past either bound the least recently read runs are dropped; a status larger than the
    whole budget is not kept at all."""
    cache = StatusCache(max_runs=3, max_bytes=100)
    for i in range(4):
        cache.put(f"w{i}", Mark("r", 1), b"x" * 10)
    assert len(cache) == 3 and cache.get("w0", Mark("r", 1)) is None
    assert cache.get("w1", Mark("r", 1)) is not None  # now the most recently read
    cache.put("big", Mark("r", 1), b"x" * 75)
    assert cache.bytes <= 100
    assert cache.get("w1", Mark("r", 1)) is not None
    assert cache.get("w2", Mark("r", 1)) is None and cache.get("w3", Mark("r", 1)) is not None
    cache.put("huge", Mark("r", 1), b"x" * 101)
    assert cache.get("huge", Mark("r", 1)) is None
    assert cache.bytes <= 100


async def test_read_begun_after_a_decision_sees_it(
    http: httpx.AsyncClient, client: Client, workflow_id: str, as_: Auth
) -> None:
    """A read that begins while an older query is still out does not share that query's answer:
    it waits for a query of its own and sees the decision made before it began."""
    queries, counted = counting(client, hold=True)
    reads = StatusReads()
    early = asyncio.create_task(reads.json(counted, workflow_id))
    await asyncio.wait_for(queries.answered.wait(), timeout=20)
    r = await http.post(
        f"/workflows/{workflow_id}/gates/release", json={"action": "approve"}, headers=as_("alice")
    )
    assert r.status_code == 200 and r.json()["state"] == "approved"
    late = asyncio.create_task(reads.json(counted, workflow_id))
    await joined_next_round(reads, workflow_id)
    queries.release.set()
    before, after = json.loads(await early), json.loads(await late)

    def gate_state(status: dict[str, Any]) -> str:
        gates: dict[str, str] = {g["gate"]: g["state"] for g in status["open_gates"]}
        return gates.get("release", "decided")

    assert gate_state(before) == "open"
    assert gate_state(after) != "open"
    assert any(a["action"] == "approve" for a in after["audit"]), after["audit"]
    assert queries.sent == 2


async def test_errors_reach_every_reader_and_nothing_is_left_behind(client: Client) -> None:
    """Readers of an unknown run all get the 404; the run's entry is gone afterwards."""
    reads = StatusReads()
    results = await asyncio.gather(
        *(reads.json(client, "no-such-run-for-reads") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ApiError) and r.status == 404 for r in results), results
    assert reads._runs == {}


async def test_a_reader_going_away_does_not_cancel_the_others(
    client: Client, workflow_id: str
) -> None:
    """One reader cancelled mid-query (a closed connection) leaves the shared query running."""
    queries, counted = counting(client, hold=True)
    reads = StatusReads()
    leaving = asyncio.create_task(reads.json(counted, workflow_id))
    staying = asyncio.create_task(reads.json(counted, workflow_id))
    await asyncio.wait_for(queries.answered.wait(), timeout=20)
    leaving.cancel()
    queries.release.set()
    assert json.loads(await staying)["workflow_id"] == workflow_id
    assert leaving.cancelled()
    assert queries.sent == 1


async def test_a_hanging_query_holds_back_only_its_own_readers(
    client: Client, workflow_id: str
) -> None:
    """While one query hangs, a read that arrives after it is answered by a query of its own."""
    queries, counted = counting(client, hold=True)
    reads = StatusReads()
    stuck = asyncio.create_task(reads.json(counted, workflow_id))
    await asyncio.wait_for(queries.answered.wait(), timeout=20)
    later = await asyncio.wait_for(reads.json(counted, workflow_id), timeout=20)
    assert json.loads(later)["workflow_id"] == workflow_id
    assert not stuck.done() and queries.sent == 2
    queries.release.set()
    assert json.loads(await stuck)["workflow_id"] == workflow_id
