"""The hand-written baselines of the dynamic pipelines: what a team would write without Stepgate.

A fan-out of no-op calls under a semaphore, in one run; and a loop that calls the no-op until a
condition over its output holds, optionally sleeping between calls. Same worker, converter and
server as the pipelines, and the timeouts and retry policy a step gets by default, so the
difference is the interpreter's.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.baseline import NOOP, RETRY, TIMEOUT
    from workflows.language.definition import Defaults
    from workflows.language.durations import parse_duration

# The heartbeat timeout a step gets by default too: a call lost with its worker is retried after
# it, on both sides alike (without it, after the whole 5-minute timeout).
_HEARTBEAT = Defaults().heartbeat_timeout
HEARTBEAT = parse_duration(_HEARTBEAT) if _HEARTBEAT else None


class FanOutInput(BaseModel):
    items: int = Field(ge=0)
    parallel: int = Field(ge=1)


class FanOutResult(BaseModel):
    outputs: list[Any]


class LoopInput(BaseModel):
    iterations: int = Field(ge=1, description="the loop stops once the output's value reaches it")
    every_ms: int = Field(0, ge=0, description="durable wait between calls; 0: none")


class LoopResult(BaseModel):
    last: Any
    calls: int


@workflow.defn(name="FanOutBaselineWorkflow")
class FanOutBaselineWorkflow:
    @workflow.run
    async def run(self, inp: FanOutInput) -> FanOutResult:
        limit = asyncio.Semaphore(inp.parallel)

        async def one(i: int) -> Any:
            async with limit:
                return await workflow.execute_activity(
                    NOOP,
                    {"value": i},
                    start_to_close_timeout=TIMEOUT,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=RETRY,
                )

        return FanOutResult(outputs=list(await asyncio.gather(*(one(i) for i in range(inp.items)))))


@workflow.defn(name="LoopBaselineWorkflow")
class LoopBaselineWorkflow:
    @workflow.run
    async def run(self, inp: LoopInput) -> LoopResult:
        calls = 0
        while True:
            calls += 1
            out = await workflow.execute_activity(
                NOOP,
                {"value": calls},
                start_to_close_timeout=TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
            )
            # The same stop rule as the pipeline's `until`, checked after every call.
            if out["value"] >= inp.iterations:
                return LoopResult(last=out, calls=calls)
            if inp.every_ms:
                await workflow.sleep(timedelta(milliseconds=inp.every_ms))
