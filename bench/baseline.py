"""The hand-written baselines: what a team would write without Stepgate, five no-op calls in a
row, as regular activities or as local ones (as a `data.echo` step runs by default), and the same
local calls with an approval before the second (GatedBaselineWorkflow).

They run on the same worker, converter and server as the interpreter, so the difference between
the two is the cost of interpreting a definition (scheduling, references, status, search attributes).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contract import SA_AWAITING
    from workflows.language.definition import Defaults
    from workflows.language.durations import parse_duration
    from workflows.language.limits import LOCAL_TIMEOUT
    from workflows.retries import retry_policy

NOOP = "bench.noop"
APPROVE = "approve"
# What a parked GatedBaselineWorkflow lists in its awaiting search attribute, so an inbox (and
# the bench) finds it as Stepgate's inbox finds a parked run.
AWAITING = "baseline"
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


async def _local(value: dict[str, Any]) -> dict[str, Any]:
    return await workflow.execute_local_activity(
        noop, value, start_to_close_timeout=LOCAL_TIMEOUT, retry_policy=RETRY
    )


@workflow.defn(name="GatedBaselineWorkflow")
class GatedBaselineWorkflow:
    """The parked bench job by hand: one local call, then it waits, listed by a search attribute,
    for one validated `approve` update, and makes the four other calls. No roles, no status, no
    memo: the least a team would write to park a run where an inbox can find it."""

    def __init__(self) -> None:
        self._approved = False

    @workflow.run
    async def run(self, value: dict[str, Any]) -> dict[str, Any]:
        value = await _local(value)
        workflow.upsert_search_attributes([SA_AWAITING.value_set([AWAITING])])
        await workflow.wait_condition(lambda: self._approved)
        workflow.upsert_search_attributes([SA_AWAITING.value_unset()])
        for _ in range(STEPS - 1):
            value = await _local(value)
        return value

    @workflow.update(name=APPROVE)
    def approve(self, actor: str) -> str:
        self._approved = True
        return actor

    @approve.validator
    def _once(self, actor: str) -> None:
        if self._approved:
            raise ValueError(f"already approved; {actor!r} is too late")
