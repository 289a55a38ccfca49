"""The runs the dynamic section starts: a `for_each` fan-out and a `repeat` loop of `data.echo`,
and their hand-written baselines. Each run is bounded in time and its result checked, so a wrong
answer fails the section instead of being timed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import WorkflowHistory

from bench import histories
from bench.baseline import NOOP
from bench.baseline_dynamic import (
    FanOutBaselineWorkflow,
    FanOutInput,
    LoopBaselineWorkflow,
    LoopInput,
)
from bench.pipelines import RUN_TIMEOUT, pipeline_input, validated
from bench.stack import Stack
from workflows.language.definition import Definition
from workflows.pipeline import PipelineWorkflow

ECHO = "data.echo"
# Regular activities, as the hand-written baselines call: like against like. (data.echo would
# otherwise run as a local activity.)
REGULAR = False


def fanout_definition(parallel: int) -> Definition:
    return validated(
        {
            "name": "bench-fanout",
            "input": {"type": "object", "properties": {"value": {"type": "array"}}},
            "steps": [
                {
                    "id": "each",
                    "for_each": "${input.value}",
                    "max_parallel": parallel,
                    "tool": ECHO,
                    "local": REGULAR,
                    "with": {"value": "${item}"},
                }
            ],
            "output": "${steps.each.output}",
        }
    )


def repeat_definition(iterations: int, every_ms: int) -> Definition:
    """Each iteration echoes its number; `until` holds once that reaches `iterations`."""
    repeat: dict[str, Any] = {
        "until": f"output.value >= {iterations}",
        "max_iterations": iterations,
    }
    if every_ms:
        repeat["every"] = f"{every_ms}ms"
    return validated(
        {
            "name": "bench-repeat",
            "steps": [
                {
                    "id": "loop",
                    "tool": ECHO,
                    "local": REGULAR,
                    "with": {"value": "${iteration}"},
                    "repeat": repeat,
                }
            ],
            "output": "${steps.loop.output}",
        }
    )


def echoed(items: int) -> list[dict[str, int]]:
    return [{"value": i} for i in range(items)]


class Runner:
    """Starts runs on one stack under fresh ids and waits at most `limit_s` for each result."""

    def __init__(self, stack: Stack, limit_s: float) -> None:
        self.stack, self.limit_s = stack, limit_s
        self.tag = uuid.uuid4().hex[:6]

    def id(self, what: str) -> str:
        return f"{self.stack.task_queue}-dyn-{self.tag}-{what}"

    async def fanout_pipeline(self, items: int, parallel: int, what: str) -> str:
        """Runs the fan-out to its end; returns the first run's id (the chain starts there)."""
        handle = await self.stack.client.start_workflow(
            PipelineWorkflow.run,
            pipeline_input(fanout_definition(parallel), list(range(items))),
            id=self.id(what),
            task_queue=self.stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )
        async with asyncio.timeout(self.limit_s):
            result = await handle.result()
        if result.output != echoed(items):
            raise RuntimeError(f"fan-out {handle.id} returned {str(result.output)[:200]}")
        assert handle.first_execution_run_id is not None  # start_workflow sets it
        return handle.first_execution_run_id

    async def fanout_baseline(self, items: int, parallel: int, what: str) -> str:
        handle = await self.stack.client.start_workflow(
            FanOutBaselineWorkflow.run,
            FanOutInput(items=items, parallel=parallel),
            id=self.id(what),
            task_queue=self.stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )
        async with asyncio.timeout(self.limit_s):
            result = await handle.result()
        if result.outputs != echoed(items):
            raise RuntimeError(f"fan-out baseline {handle.id} returned {str(result.outputs)[:200]}")
        assert handle.first_execution_run_id is not None
        return handle.first_execution_run_id

    async def repeat_pipeline(self, iterations: int, every_ms: int, what: str) -> WorkflowHistory:
        handle = await self.stack.client.start_workflow(
            PipelineWorkflow.run,
            pipeline_input(repeat_definition(iterations, every_ms), None),
            id=self.id(what),
            task_queue=self.stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )
        async with asyncio.timeout(self.limit_s):
            result = await handle.result()
        if result.output != {"value": iterations}:
            raise RuntimeError(f"repeat {handle.id} returned {result.output!r}")
        return await self.calls(handle.id, ECHO, iterations)

    async def repeat_baseline(self, iterations: int, every_ms: int, what: str) -> WorkflowHistory:
        handle = await self.stack.client.start_workflow(
            LoopBaselineWorkflow.run,
            LoopInput(iterations=iterations, every_ms=every_ms),
            id=self.id(what),
            task_queue=self.stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )
        async with asyncio.timeout(self.limit_s):
            result = await handle.result()
        if result.calls != iterations:
            raise RuntimeError(f"loop baseline {handle.id} made {result.calls} calls")
        return await self.calls(handle.id, NOOP, iterations)

    async def calls(self, workflow_id: str, activity: str, expected: int) -> WorkflowHistory:
        """The run's history, once it is known to hold one call of `activity` per iteration."""
        history = await self.stack.client.get_workflow_handle(workflow_id).fetch_history()
        found = len(histories.scheduled_ms(history, activity))
        if found != expected:
            raise RuntimeError(f"{workflow_id}: {found} calls of {activity}, not {expected}")
        return history
