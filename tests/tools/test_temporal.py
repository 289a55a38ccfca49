"""Tools as real activities on the Temporal dev server: retries, cancellation, bad input."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import tempfile
    import uuid
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager
    from pathlib import Path

    import pytest
    from pydantic import BaseModel, ConfigDict, Field
    from temporalio import activity
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.common import RetryPolicy
    from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
    from temporalio.worker import Worker

    from activities import default_registry
    from activities.config import Settings
    from activities.context import ToolContext
    from activities.errors import transient
    from activities.models import ToolCall, ToolResult
    from activities.registry import ToolRegistry, tool
    from activities.runtime import ToolActivities
    from tests.shell.helpers import PY, processes_with
    from tests.support.util import eventually
    from tests.tools.conftest import make_call


@workflow.defn
class RunOneTool:
    """Runs the ToolCall it is given as the activity named after the tool."""

    @workflow.run
    async def run(self, call: ToolCall) -> ToolResult:
        result: ToolResult = await workflow.execute_activity(
            call.tool,
            call,
            result_type=ToolResult,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=5,
            ),
            # Wait for the activity to acknowledge, so the workflow ends after the kill.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return result


class FlakyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="Anything.")


class FlakyOutput(BaseModel):
    attempt: int = Field(description="The attempt that succeeded.")


def flaky_registry(attempts: list[int]) -> ToolRegistry:
    """A registry whose `test.flaky` fails transiently on attempts 1 and 2."""

    @tool("test.flaky", "1.0.0")
    async def flaky(inp: FlakyInput, ctx: ToolContext) -> FlakyOutput:
        """Fail twice, then succeed."""
        attempt = activity.info().attempt
        attempts.append(attempt)
        if attempt < 3:
            raise transient(f"attempt {attempt} fails on purpose")
        return FlakyOutput(attempt=attempt)

    return ToolRegistry([flaky])


@asynccontextmanager
async def worker_for(client: Client, task_queue: str, acts: ToolActivities) -> AsyncIterator[None]:
    """A worker running RunOneTool and the given tools; their HTTP client is closed afterwards."""
    try:
        async with Worker(
            client, task_queue=task_queue, workflows=[RunOneTool], activities=acts.activities()
        ):
            yield
    finally:
        await acts.http.aclose()


async def test_flaky_tool_succeeds_when_retried_by_temporal(
    client: Client, task_queue: str, settings: Settings
) -> None:
    """A transient failure is retried under the retry policy until attempt 3 succeeds."""
    attempts: list[int] = []
    acts = ToolActivities(flaky_registry(attempts), settings)
    async with worker_for(client, task_queue, acts):
        result = await client.execute_workflow(
            RunOneTool.run,
            make_call("test.flaky", {"label": "x"}),
            id=f"tools-{uuid.uuid4()}",
            task_queue=task_queue,
        )
    assert result.output == {"attempt": 3}
    assert attempts == [1, 2, 3]


async def test_shell_run_kills_process_when_workflow_cancelled(
    client: Client, task_queue: str, settings: Settings
) -> None:
    """Cancelling the workflow mid-command reaches the activity and kills the subprocess."""
    marker = f"sleeper-{uuid.uuid4().hex}"
    call = make_call("shell.run", {"argv": [PY, "-c", "import time; time.sleep(60)", marker]})
    # Programs run as nobody when the tests run as root: the workspace must be reachable.
    with tempfile.TemporaryDirectory(prefix="stepgate-shell-") as root:
        Path(root).chmod(0o755)
        acts = ToolActivities(
            default_registry(entry_points=False),
            settings.model_copy(
                update={"stepgate_shell_allow": [PY], "stepgate_artifact_root": Path(root)}
            ),
        )
        async with worker_for(client, task_queue, acts):
            handle = await client.start_workflow(
                RunOneTool.run, call, id=f"tools-{uuid.uuid4()}", task_queue=task_queue
            )
            await eventually(lambda: processes_with(marker), what="the program to start")
            await handle.cancel()
            await eventually(lambda: processes_with(marker) == [], what="the program to die")
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
    assert isinstance(err.value.cause, CancelledError)


async def test_bad_input_fails_once_when_field_is_misspelled(
    client: Client, task_queue: str, settings: Settings
) -> None:
    """Invalid input fails the activity non-retryably on attempt 1, naming the field."""
    call = make_call("http.request", {"url": "http://127.0.0.1:9/", "timout_s": 5})
    acts = ToolActivities(default_registry(entry_points=False), settings)
    async with worker_for(client, task_queue, acts):
        handle = await client.start_workflow(
            RunOneTool.run, call, id=f"tools-{uuid.uuid4()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    failure = activity_error.cause
    assert isinstance(failure, ApplicationError) and failure.non_retryable
    assert "timout_s: Extra inputs are not permitted" in failure.message
    started = [
        e.activity_task_started_event_attributes.attempt
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert started == [1]
