"""A workflow that runs one tool call beside a heartbeating probe on the same worker: the probe
fails with a heartbeat timeout if the call stalls the worker."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field
    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ActivityError, ApplicationError

    from activities.context import ToolContext
    from activities.models import ToolCall, ToolResult
    from activities.registry import tool


class BeatInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beats: int = Field(description="How many heartbeats to send.")
    interval_s: float = Field(description="Pause between heartbeats.")


class BeatOutput(BaseModel):
    beats: int = Field(description="Heartbeats sent.")


@tool("test.beat", "1.0.0", heartbeat=True)
async def beat(inp: BeatInput, ctx: ToolContext) -> BeatOutput:
    """Heartbeat `beats` times, pausing in between on the worker's event loop."""
    for n in range(inp.beats):
        ctx.heartbeat(n)
        await asyncio.sleep(inp.interval_s)
    return BeatOutput(beats=inp.beats)


class Outcome(BaseModel):
    """How one activity ended: its output, or the failure Temporal reported."""

    output: dict[str, object] | None = None
    error_type: str | None = None
    message: str | None = None
    non_retryable: bool | None = None


class BesideInput(BaseModel):
    call: ToolCall
    probe: ToolCall
    heartbeat_timeout_s: float = 1.0


class BesideResult(BaseModel):
    call: Outcome
    probe: Outcome


def _outcome(result: ToolResult | BaseException) -> Outcome:
    if isinstance(result, ToolResult):
        return Outcome(output=result.output)
    cause = result.cause if isinstance(result, ActivityError) else result
    if isinstance(cause, ApplicationError):
        return Outcome(
            error_type=cause.type, message=cause.message, non_retryable=cause.non_retryable
        )
    return Outcome(error_type=type(cause).__name__, message=str(cause))


@workflow.defn
class RunBeside:
    """Starts the call and the probe together, each with one attempt, and reports both."""

    @workflow.run
    async def run(self, inp: BesideInput) -> BesideResult:
        once = RetryPolicy(maximum_attempts=1)
        call = workflow.execute_activity(
            inp.call.tool,
            inp.call,
            result_type=ToolResult,
            start_to_close_timeout=timedelta(seconds=120),
            retry_policy=once,
        )
        probe = workflow.execute_activity(
            inp.probe.tool,
            inp.probe,
            result_type=ToolResult,
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_s),
            retry_policy=once,
        )
        done = await asyncio.gather(call, probe, return_exceptions=True)
        return BesideResult(call=_outcome(done[0]), probe=_outcome(done[1]))
