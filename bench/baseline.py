"""The hand-written baselines: what a team would write without Stepgate, five no-op calls in a
row, as regular activities or as local ones (as a `data.echo` step runs by default).

They run on the same worker, converter and server as the interpreter, so the difference between
the two is the cost of interpreting a definition (scheduling, references, status, search attributes).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows.definition import Defaults
    from workflows.durations import parse_duration
    from workflows.limits import LOCAL_TIMEOUT
    from workflows.policies import retry_policy

NOOP = "bench.noop"
STEPS = 5
# The limits PipelineWorkflow gives a step that sets none, so both sides ask Temporal for the same.
_DEFAULTS = Defaults()
TIMEOUT = parse_duration(_DEFAULTS.timeout)
RETRY = retry_policy(None, _DEFAULTS)


@activity.defn(name=NOOP)
async def noop(value: dict[str, Any]) -> dict[str, Any]:
    return value


@workflow.defn(name="BaselineWorkflow")
class BaselineWorkflow:
    @workflow.run
    async def run(self, value: dict[str, Any]) -> dict[str, Any]:
        for _ in range(STEPS):
            value = await workflow.execute_activity(
                NOOP, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
            )
        return value


@workflow.defn(name="LocalBaselineWorkflow")
class LocalBaselineWorkflow:
    """The same five calls as local activities, with the timeout and retries a local step gets."""

    @workflow.run
    async def run(self, value: dict[str, Any]) -> dict[str, Any]:
        for _ in range(STEPS):
            value = await workflow.execute_local_activity(
                NOOP, value, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
            )
        return value
