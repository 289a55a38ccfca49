"""The pipelines the bench runs (five linear `data.echo` steps, optionally gated) and run helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle

from activities import default_registry
from bench.baseline import STEPS
from bench.stack import APPROVER
from workflows.language.definition import Definition
from workflows.language.validation import validate_definition
from workflows.models import Decision, PipelineInput, PipelineResult, Principal
from workflows.pipeline import PipelineWorkflow

GATED_STEP = "s2"
BENCH_ROLE = "bench"
# Server-side bound on every bench run, so nothing the bench starts outlives a crashed bench by much.
RUN_TIMEOUT = timedelta(minutes=30)
START_CONCURRENCY = 50

PipelineHandle = WorkflowHandle[PipelineWorkflow, PipelineResult]


def linear(name: str, *, gate_role: str | None = None, local: bool | None = None) -> Definition:
    """`s1 -> ... -> s5`, each echoing the previous output; a `before` gate on s2 if asked.
    `local` pins how the steps run; by default `data.echo` runs as a local activity."""
    steps: list[dict[str, Any]] = []
    for i in range(1, STEPS + 1):
        source = "${input.value}" if i == 1 else f"${{steps.s{i - 1}.output.value}}"
        step: dict[str, Any] = {"id": f"s{i}", "tool": "data.echo", "with": {"value": source}}
        if local is not None:
            step["local"] = local
        if i > 1:
            step["needs"] = [f"s{i - 1}"]
        if gate_role and step["id"] == GATED_STEP:
            step["approval"] = {"stage": "before", "approvers": [f"role:{gate_role}"]}
        steps.append(step)
    raw = {
        "name": name,
        "input": {"type": "object", "properties": {"value": {}}},
        "steps": steps,
        "output": {"value": f"${{steps.s{STEPS}.output.value}}"},
    }
    return validated(raw)


def validated(raw: dict[str, Any]) -> Definition:
    """A definition validated like the API validates one, so tools are pinned as in a real run."""
    report = validate_definition(raw, default_registry(entry_points=False))
    if report.definition is None:
        raise RuntimeError(f"bench definition {raw.get('name')!r} is invalid: {report.errors}")
    return report.definition


def pipeline_input(definition: Definition, value: Any) -> PipelineInput:
    return PipelineInput(
        definition=definition,
        input={"value": value},
        requester=Principal(principal="bench-requester", roles=[BENCH_ROLE]),
    )


def approval(role: str = BENCH_ROLE) -> Decision:
    return Decision(gate=GATED_STEP, action="approve", actor=APPROVER, roles=[role])


async def start_pipeline(
    client: Client, task_queue: str, definition: Definition, workflow_id: str
) -> PipelineHandle:
    return await client.start_workflow(
        PipelineWorkflow.run,
        pipeline_input(definition, workflow_id),
        id=workflow_id,
        task_queue=task_queue,
        execution_timeout=RUN_TIMEOUT,
    )


async def start_many(
    client: Client, task_queue: str, definition: Definition, ids: Iterable[str]
) -> list[PipelineHandle]:
    """Start runs with bounded concurrency: thousands of simultaneous RPCs only measure queuing."""
    limit = asyncio.Semaphore(START_CONCURRENCY)

    async def one(workflow_id: str) -> PipelineHandle:
        async with limit:
            return await start_pipeline(client, task_queue, definition, workflow_id)

    return list(await asyncio.gather(*(one(i) for i in ids)))


async def bounded_each(
    items: Iterable[Any], action: Callable[[Any], Awaitable[None]], concurrency: int
) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> None:
        async with limit:
            await action(item)

    await asyncio.gather(*(one(i) for i in items))


async def poll(check: Callable[[], Awaitable[bool]], interval_s: float, timeout_s: float) -> None:
    """Await `check` until true, bounded both in tries and in time (TimeoutError otherwise).

    Polling, not events: visibility and queries are what a real inbox or UI reads, too.
    """
    async with asyncio.timeout(timeout_s):
        for _ in range(int(timeout_s / interval_s) + 1):
            if await check():
                return
            await asyncio.sleep(interval_s)
    raise TimeoutError(f"condition not met after {timeout_s:.0f}s")


async def wait_parked(client: Client, query: str, expected: int, timeout_s: float) -> float:
    """Poll visibility until `expected` runs match `query`; returns the seconds it took."""
    started = time.perf_counter()

    async def enough() -> bool:
        return (await client.count_workflows(query)).count >= expected

    await poll(enough, 0.1, timeout_s)
    return time.perf_counter() - started


async def gate_open(handle: PipelineHandle, timeout_s: float) -> None:
    """Wait (polling the status query) until the run waits at its gate."""

    async def waiting() -> bool:
        return bool((await handle.query(PipelineWorkflow.status)).open_gates)

    await poll(waiting, 0.02, timeout_s)
