"""Runs one Stepgate worker process: every workflow and every tool activity on one task queue."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowRunner,
)

from activities import default_registry, tracing
from activities.access import AccessActivities
from activities.agent import AgentActivities
from activities.audit import AuditActivities
from activities.checks import CheckActivities
from activities.config import Settings, get_settings
from activities.lists import ListActivities
from activities.logs import configure_logging
from activities.memory import MemoryActivities
from activities.metrics import STEP_BUCKETS, STEP_DURATION
from activities.registry import ToolError, ToolRegistry
from activities.runtime import ToolActivities
from workflows import metrics as workflow_metrics
from workflows.builds import deployment_config, package_version
from workflows.client import TemporalUnreachable, exit_now, make_client
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.deployment import UNVERSIONED_OPEN_RUNS, BuildNotReady, make_current_at_start
from workflows.governed import GovernedWorkflow
from workflows.language.catalog import Catalog, log_errors
from workflows.language.plans import PlanActivities
from workflows.pipeline import PipelineWorkflow
from workflows.tracing import interceptors

log = structlog.get_logger("stepgate.worker")
WORKFLOWS: Sequence[type] = (PipelineWorkflow, GovernedWorkflow)
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


def workflow_runner() -> WorkflowRunner:
    """Workflow code runs outside Temporal's sandbox.

    The sandbox re-executes a workflow's module for every run it starts or takes back after an
    eviction (5.7 ms of CPU and 230 KiB per run for workflows/pipeline.py), so the `workflows`
    package had been passed through it, imported once per process; passed-through code runs
    against the real modules, so the sandbox no longer restricted anything our workflows call.
    What it still cost: for every payload of every command and activation, the SDK entered the
    sandbox to look up a serialization context: 16 % of the worker's busy time in the overhead
    bench (README, Performance). Determinism rests where it rested already: workflow modules hold
    classes, constants and pure functions and take time and randomness from `workflow.*`;
    tests/test_workflow_determinism.py refuses clock, randomness and I/O in their source, and
    replaying tests/histories pins the rest.
    """
    return UnsandboxedWorkflowRunner()


class StepgateWorker(Worker):
    """A Temporal worker that also closes the memory store it made once it has shut down: a
    store left to the garbage collector would close its pooled connections whenever that runs,
    possibly inside a workflow activation, whose event loop refuses the callbacks."""

    def __init__(
        self, *args: Any, owned_memory: MemoryActivities | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._owned_memory = owned_memory

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            owned, self._owned_memory = self._owned_memory, None
            if owned is not None:
                await owned.store.close()


def make_runtime(settings: Settings) -> Runtime | None:
    """The worker's SDK runtime serving Prometheus text at STEPGATE_WORKER_METRICS_ADDRESS: the
    SDK's metrics (`temporal_*`, durations in seconds) and Stepgate's from workflow and activity
    code (workflows/metrics.py, activities/metrics.py). None without an address: the default runtime,
    no metrics served. ValueError when the address cannot be bound (taken, say)."""
    address = settings.stepgate_worker_metrics_address
    if not address:
        return None
    buckets = {
        workflow_metrics.GATE_DECISION: list(workflow_metrics.GATE_DECISION_BUCKETS),
        workflow_metrics.DECISION_TO_STEP: list(workflow_metrics.DECISION_TO_STEP_BUCKETS),
        STEP_DURATION: list(STEP_BUCKETS),
    }
    prometheus = PrometheusConfig(
        bind_address=address,
        counters_total_suffix=False,
        durations_as_seconds=True,
        histogram_bucket_overrides=buckets,
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def read_catalog(settings: Settings, registry: ToolRegistry) -> Catalog:
    """The catalog, read only to log what it holds: the worker runs the snapshots runs carry,
    so a bad definition file is logged, never a reason not to start."""
    catalog = Catalog.load(settings.stepgate_definitions_dir, registry)
    log_errors(catalog.errors)
    workflow_metrics.name_pipelines(catalog.names())
    return catalog


def build_worker(
    client: Client,
    settings: Settings,
    registry: ToolRegistry,
    *,
    task_queue: str | None = None,
    tools: ToolActivities | None = None,
    access: AccessActivities | None = None,
    memory: MemoryActivities | None = None,
    deployment: WorkerDeploymentConfig | None = None,
) -> Worker:
    """The worker the process runs; tests and benchmarks build theirs the same way. The memory's
    engine connects at first use (main() migrates it at start). `deployment`: the Worker
    Deployment Version it polls as (workflows.builds.deployment_config); None: unversioned."""
    tools = tools or ToolActivities(registry, settings)
    owned = None
    if memory is None:
        memory = owned = MemoryActivities.from_settings(settings)
    checks = CheckActivities(registry)
    plans = PlanActivities(registry)
    audit = AuditActivities(tools.artifacts)
    lists = ListActivities(tools.artifacts)
    agents = AgentActivities(registry, tools.artifacts)
    # Reads the API keys and permissions files now: a bad one stops the worker at start.
    access = access or AccessActivities(settings)
    return StepgateWorker(
        client,
        owned_memory=owned,
        task_queue=task_queue or settings.stepgate_task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            *tools.activities(),
            *checks.activities(),
            *plans.activities(),
            *audit.activities(),
            *lists.activities(),
            *agents.activities(),
            *memory.activities(),
            access.authorize,
        ],
        max_concurrent_activities=settings.stepgate_max_concurrent_activities,
        max_cached_workflows=settings.stepgate_max_cached_workflows,
        max_concurrent_workflow_tasks=settings.stepgate_max_concurrent_workflow_tasks,
        workflow_runner=workflow_runner(),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        deployment_config=deployment,
    )


async def become_current(
    client: Client, deployment: WorkerDeploymentConfig, stop: asyncio.Event
) -> bool:
    """STEPGATE_SET_CURRENT_VERSION: new runs go to this build once it polls. False: Temporal
    would not make it current, and a worker nobody sends runs to would only hide that. A stop
    meanwhile ends the wait (True: the worker then drains as usual)."""
    version = deployment.version
    promote = asyncio.ensure_future(
        make_current_at_start(client, version.deployment_name, version.build_id, client.identity)
    )
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({promote, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not promote.done():
        promote.cancel()
        return True
    try:
        previous = promote.result()
    except BuildNotReady as err:
        log.error("could not make this build current", error=str(err))
        return False
    log.info("this build is current", build_id=version.build_id, previous=previous)
    return True


async def warn_of_unversioned_runs(client: Client) -> None:
    """Runs an unversioned worker (0.1.x) started go to whichever build is current, whose code
    does not replay their histories: a versioned worker says at start that some are open."""
    try:
        count = (await client.count_workflows(UNVERSIONED_OPEN_RUNS)).count
    except RPCError:
        return  # visibility is down: the worker's own start reports what matters
    if count:
        log.warning(
            "open runs belong to no build: those an unversioned (0.1.x) worker started must be "
            "finished or cancelled (docs/versioning.md); the others have not reached a worker yet",
            count=count,
        )


async def missing_search_attributes(client: Client) -> list[str]:
    """Stepgate's search attributes the namespace lacks (or holds with another type): a run that
    upserts one fails its workflow task again and again, so the worker refuses to start instead.
    Empty too when the server will not list them to this client (no operator access): nothing to
    go by. RPCError for any other failure (a namespace that does not exist)."""
    request = ListSearchAttributesRequest(namespace=client.namespace)
    try:
        found = await client.operator_service.list_search_attributes(request)
    except RPCError as err:
        if err.status not in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
            raise
        log.warning("search attributes not checked", error=str(err))
        return []
    have = {**found.system_attributes, **found.custom_attributes}
    return [
        f"{key.name} ({key.indexed_value_type.name})"
        for key in SEARCH_ATTRIBUTES
        if have.get(key.name) != int(key.indexed_value_type)
    ]


async def main() -> int:
    try:
        settings = get_settings()
    except ValidationError as err:
        # Logging is configured from the settings, so this one line goes out unconfigured.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        log.error("startup refused: invalid settings", error=problems)
        return 2
    configure_logging(settings)
    try:
        registry = default_registry()
        catalog = read_catalog(settings, registry)
        # Built before connecting, so a bad outbound policy stops the worker at once.
        tools = ToolActivities(registry, settings)
        access = AccessActivities(settings)
        memory = MemoryActivities.from_settings(settings)
    except (ToolError, ValueError) as err:
        log.error("startup refused", error=str(err))
        return 2
    try:
        runtime = make_runtime(settings)
    except ValueError as err:
        log.error("startup refused: metrics address", error=str(err))
        return 2
    try:
        traces = tracing.configure("stepgate-worker", package_version())
    except ValueError as err:
        log.error("startup refused: tracing", error=str(err))
        return 2
    try:
        client = await make_client(settings, runtime=runtime, interceptors=interceptors(traces))
    except TemporalUnreachable as err:
        log.error("temporal unreachable", error=str(err))
        return 3
    try:
        missing = await missing_search_attributes(client)
    except RPCError as err:
        log.error("startup refused: search attributes not listed", error=str(err))
        return 3
    if missing:
        log.error(
            "startup refused: search attributes not registered (scripts/register-search-attributes)",
            namespace=settings.temporal_namespace,
            missing=missing,
        )
        return 3
    # Migrates the memory now if its database answers (the API does too, under the same lock);
    # if not, the first memory activity tries again, and fails retryably until it can.
    await memory.store.start()
    deployment = deployment_config(settings)
    worker = build_worker(
        client, settings, registry, tools=tools, access=access, memory=memory, deployment=deployment
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        task_queue=settings.stepgate_task_queue,
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        tools=registry.names(),
        pipelines=catalog.refs(),
        catalog_errors=len(catalog.errors),
        api_keys_file=str(settings.stepgate_api_keys_file or ""),
        deployment=settings.stepgate_deployment_name if deployment else None,
        build_id=deployment.version.build_id if deployment else None,
        metrics=settings.stepgate_worker_metrics_address or None,
        traces=traces is not None,
    )
    try:
        async with worker:
            if deployment:
                await warn_of_unversioned_runs(client)
            if deployment and settings.stepgate_set_current_version:
                if not await become_current(client, deployment, stop):
                    return 3
            await stop.wait()
            log.info("draining: finishing running activities before exit")
    finally:
        await memory.store.close()
        tracing.flush()
    log.info("worker stopped")
    return 0


if __name__ == "__main__":
    exit_now(asyncio.run(main()))
