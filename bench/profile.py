"""`python -m bench.profile`: where the interpreter's time goes, in-process and repeatable.

Two views of one five-step run, each against the baseline doing the same work:
- workflow side: pipeline and baseline histories from the bench's own server are replayed here,
  with workflow activations run on the main thread (the SDK normally uses a thread pool, which a
  sampling profiler of the main thread would miss), timed and sampled with pyinstrument;
- activity side: the `data.echo` tool call through ToolActivities.execute against `bench.noop`
  (outside an activity context, so without the heartbeat task a live call also starts).

Also the API's own CPU per `GET /workflows/{id}`, with the app driven in-process.
Writes bench/results/profile-*.txt and prints CPU milliseconds per run (or request).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import yaml
from pyinstrument import Profiler
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import default_registry
from activities.config import Settings
from activities.models import ToolCall
from activities.runtime import ToolActivities
from bench.baseline import BaselineWorkflow, noop
from bench.pipelines import RUN_TIMEOUT, gate_open, linear, pipeline_input, start_pipeline
from bench.report import RESULTS
from bench.stack import Stack, open_stack, start_worker
from tests.support.procs import Processes
from worker import workflow_runner
from workflows.client import make_data_converter
from workflows.pipeline import PipelineWorkflow

RUNS = 30
API_REQUESTS = 300
REPLAY_ROUNDS = 5
TOOL_CALLS = 2_000


class ProfiledExecutor(concurrent.futures.ThreadPoolExecutor):
    """One activation thread with pyinstrument attached to it (a profiler samples one thread)."""

    def __init__(self) -> None:
        self.profiler = Profiler(interval=0.0005, async_mode="disabled")
        super().__init__(max_workers=1, thread_name_prefix="activation")

    def profiling(self, on: bool) -> None:
        # Start and stop must run on the sampled thread itself.
        self.submit(self.profiler.start if on else self.profiler.stop).result(timeout=10)


async def api_profile(stack: Stack, workdir: Path) -> tuple[float, Path]:
    """CPU ms per `GET /workflows/{id}` inside the API app (ASGI, no sockets), and its profile.

    The Temporal query itself is a gRPC round trip to the server and worker, which shows as
    waiting here; what remains is the API's own work: auth, decoding, validation, rendering.
    """
    from api.app import create_app  # here: the API may be mid-rewrite; the replay part needs none

    handle = await start_pipeline(
        stack.client, stack.task_queue, linear("bench-api", gate_role="bench-api"), "prof-api"
    )
    await gate_open(handle, 30.0)
    keys = workdir / "keys.yaml"
    keys.write_text(
        yaml.safe_dump([{"key": "profile-key-0", "principal": "p", "roles": ["viewer"]}])
    )
    settings = Settings(
        temporal_address=stack.address,
        stepgate_api_keys_file=keys,
        stepgate_definitions_dir=workdir / "definitions",
        stepgate_data=workdir / "data",
        stepgate_rate_per_s=0,  # the profile sends its requests back to back, as the bench does
    )
    app = create_app(settings)
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": "Bearer profile-key-0"},
        ) as http:
            for _ in range(20):
                (await http.get("/workflows/prof-api")).raise_for_status()
            started = time.process_time()
            profiler.start()
            for _ in range(API_REQUESTS):
                (await http.get("/workflows/prof-api")).raise_for_status()
            profiler.stop()
            cpu_ms = (time.process_time() - started) * 1000 / API_REQUESTS
    await handle.terminate("profile done")
    out = RESULTS / "profile-api.txt"
    out.write_text(views(profiler))
    return cpu_ms, out


async def histories(
    stack: Stack,
) -> tuple[list[WorkflowHistory], list[WorkflowHistory]]:
    client = stack.client
    definition = linear("bench-profile")
    pipes, bases = [], []
    for i in range(RUNS):
        p = await client.start_workflow(
            PipelineWorkflow.run,
            pipeline_input(definition, i),
            id=f"prof-p-{i}",
            task_queue=stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )
        b = await client.start_workflow(
            BaselineWorkflow.run,
            {"value": i},
            id=f"prof-b-{i}",
            task_queue=stack.task_queue,
            execution_timeout=RUN_TIMEOUT,
        )
        await p.result()
        await b.result()
        pipes.append(await p.fetch_history())
        bases.append(await b.fetch_history())
    return pipes, bases


def views(profiler: Profiler) -> str:
    """Inclusive time by caller (over 2%), then total and self time by function (top 80)."""
    tree = profiler.output_text(
        show_all=True, time="percent_of_total", processor_options={"filter_threshold": 0.02}
    )
    total = profiler.output_text(show_all=True, flat=True, flat_time="total")
    own = profiler.output_text(show_all=True, flat=True)
    top = "\n".join(total.splitlines()[:80]), "\n".join(own.splitlines()[:80])
    return (
        f"== tree ==\n{tree}\n== total by function ==\n{top[0]}\n== self by function ==\n{top[1]}"
    )


async def _each(runs: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in runs:
        yield history


async def replay_ms(replayer: Replayer, runs: list[WorkflowHistory]) -> float:
    """CPU ms per run of replaying `runs` REPLAY_ROUNDS times (the first round warms caches)."""
    await replayer.replay_workflows(_each(runs))
    started = time.process_time()
    for _ in range(REPLAY_ROUNDS):
        await replayer.replay_workflows(_each(runs))
    return (time.process_time() - started) * 1000 / (REPLAY_ROUNDS * len(runs))


async def tool_ms(workdir: Path) -> tuple[float, float]:
    settings = Settings(stepgate_data=workdir / "data")
    tools = ToolActivities(default_registry(entry_points=False), settings)
    call = ToolCall(
        tool="data.echo",
        version="1.0.0",
        step_id="s1",
        workflow_id="w",
        args={"value": 1},
        idempotency_key="w/s1",
    )
    started = time.process_time()
    for _ in range(TOOL_CALLS):
        await tools.execute(call)
    echo = (time.process_time() - started) * 1000 / TOOL_CALLS
    started = time.process_time()
    for _ in range(TOOL_CALLS):
        await noop({"value": 1})
    base = (time.process_time() - started) * 1000 / TOOL_CALLS
    await tools.http.aclose()
    return echo, base


async def run(workdir: Path, procs: Processes) -> str:
    stack = await open_stack(procs, workdir)
    await start_worker(stack, "worker-1")
    pipes, bases = await histories(stack)
    api_ms, api_out = await api_profile(stack, workdir)
    executor = ProfiledExecutor()
    replayer = Replayer(
        workflows=[PipelineWorkflow, BaselineWorkflow],
        data_converter=make_data_converter(Settings()),
        workflow_task_executor=executor,
        workflow_runner=workflow_runner(),  # as the worker runs them
    )
    try:
        base_ms = await replay_ms(replayer, bases)
        pipe_ms = await replay_ms(replayer, pipes)
        # Sampled separately, so the timings above carry no profiler overhead. The main thread
        # runs the SDK's side of each activation (decoding, payload conversion, encoding
        # commands); the executor's thread runs the workflow code itself.
        main_thread = Profiler(interval=0.0005, async_mode="disabled")
        executor.profiling(True)
        main_thread.start()
        await replay_ms(replayer, pipes)
        main_thread.stop()
        executor.profiling(False)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    # What Temporal's sandbox would cost (worker.workflow_runner says why the worker runs without
    # it): the same runs replayed in the default sandbox, which re-imports the workflow's modules
    # for every run and enters the sandbox for every payload.
    sandboxed = Replayer(
        workflows=[PipelineWorkflow],
        data_converter=make_data_converter(Settings()),
        workflow_runner=SandboxedWorkflowRunner(),
    )
    pipe_sandboxed_ms = await replay_ms(sandboxed, pipes)
    out = RESULTS / "profile-replay.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "".join(
            f"##### {name} #####\n{views(profiler)}\n"
            for name, profiler in (
                ("activation thread (workflow code)", executor.profiler),
                ("main thread (SDK: decode, convert, encode)", main_thread),
            )
        )
    )
    echo_ms, noop_ms = await tool_ms(workdir)
    return (
        f"workflow side, CPU per five-step run (replay): pipeline {pipe_ms:.2f} ms, "
        f"baseline {base_ms:.2f} ms; pipeline in Temporal's default sandbox "
        f"{pipe_sandboxed_ms:.2f} ms\n"
        f"activity side, CPU per tool call: data.echo via ToolActivities {echo_ms:.3f} ms, "
        f"bench.noop {noop_ms:.3f} ms\n"
        f"API CPU per GET /workflows/{{id}} (in-process, profiler attached): {api_ms:.2f} ms\n"
        f"profiles: {out}, {api_out}"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="stepgate-profile-") as tmp:
        workdir = Path(tmp)
        (workdir / "definitions").mkdir()
        with Processes(workdir) as procs:
            print(asyncio.run(run(workdir, procs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
