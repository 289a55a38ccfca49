"""The worker deployment as Temporal sees it: each build of it with its status and the Stepgate
runs still open on it, and making a build current. The worker uses it at start
(STEPGATE_SET_CURRENT_VERSION), the API for `GET /versions` and `POST /versions/current`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.deployment.v1 import WorkerDeploymentInfo
from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentResponse,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.contract import STEPGATE_WORKFLOW_TYPES
from workflows.query_text import in_list, quote

# Open Stepgate runs, and those that no build holds: started by an unversioned worker (0.1.x,
# or STEPGATE_WORKER_VERSIONING=false), or not yet taken by any worker. docs/versioning.md
# gives the same filter for `temporal workflow list --query`.
OPEN_RUNS = (
    f"ExecutionStatus = 'Running' AND WorkflowType IN {in_list(sorted(STEPGATE_WORKFLOW_TYPES))}"
)
UNVERSIONED_OPEN_RUNS = f"{OPEN_RUNS} AND TemporalWorkerDeploymentVersion IS NULL"
# The answers Temporal gives while a build is not (yet) one it can make current: no deployment
# or version yet (the worker has not polled), a conflicting change, a version without pollers.
NOT_READY = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.ABORTED)
_STATUS_PREFIX = "WORKER_DEPLOYMENT_VERSION_STATUS_"


class BuildNotReady(Exception):
    """Temporal refused to make the build current; the message is its reason."""


@dataclass(frozen=True)
class Build:
    """One build of the deployment. `status` is Temporal's word for it: `current`, `ramping`,
    `draining` (no new runs; pinned ones may be open), `drained` (Temporal checked: none open),
    `inactive` (never current) or `created`. `open_runs` counts the open Stepgate runs pinned
    to it, from visibility, now."""

    build_id: str
    status: str
    created_at: datetime | None
    current_since: datetime | None
    drained_since: datetime | None
    open_runs: int


@dataclass(frozen=True)
class Deployment:
    name: str
    current_build_id: str | None  # None: new runs go to unversioned workers
    ramping_build_id: str | None
    ramping_percentage: float
    builds: list[Build]  # the newest first
    unversioned_open_runs: int
    last_modified_by: str | None  # the identity that last changed which build is current


def version_query(name: str, build_id: str) -> str:
    """Open Stepgate runs pinned to the build (Temporal 1.29 writes `<deployment>:<build id>`
    into TemporalWorkerDeploymentVersion)."""
    return f"{OPEN_RUNS} AND TemporalWorkerDeploymentVersion = {quote(f'{name}:{build_id}')}"


def _time(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


async def _count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def _describe(client: Client, name: str) -> DescribeWorkerDeploymentResponse | None:
    """None when the deployment does not exist (no versioned worker has polled yet)."""
    request = DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)
    try:
        return await client.workflow_service.describe_worker_deployment(request)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def describe(client: Client, name: str) -> Deployment:
    """The deployment's builds with their open runs (a deployment not yet created has none)."""
    response = await _describe(client, name)
    info = response.worker_deployment_info if response else WorkerDeploymentInfo(name=name)
    summaries = sorted(
        info.version_summaries, key=lambda s: s.create_time.ToNanoseconds(), reverse=True
    )
    counts = await asyncio.gather(
        _count(client, UNVERSIONED_OPEN_RUNS),
        *(_count(client, version_query(name, s.deployment_version.build_id)) for s in summaries),
    )
    builds = []
    for summary, open_runs in zip(summaries, counts[1:], strict=True):
        status = WorkerDeploymentVersionStatus.Name(summary.status).removeprefix(_STATUS_PREFIX)
        drainage = summary.drainage_info
        builds.append(
            Build(
                build_id=summary.deployment_version.build_id,
                status=status.lower(),
                created_at=_time(summary.create_time, summary.HasField("create_time")),
                current_since=_time(
                    summary.current_since_time, summary.HasField("current_since_time")
                ),
                drained_since=_time(drainage.last_changed_time, status == "DRAINED"),
                open_runs=open_runs,
            )
        )
    routing = info.routing_config
    return Deployment(
        name=name,
        current_build_id=routing.current_deployment_version.build_id or None,
        ramping_build_id=routing.ramping_deployment_version.build_id or None,
        ramping_percentage=routing.ramping_version_percentage,
        builds=builds,
        unversioned_open_runs=counts[0],
        last_modified_by=info.last_modifier_identity or None,
    )


async def set_current(client: Client, name: str, build_id: str, identity: str) -> str | None:
    """Make the build current: new runs start on it, runs pinned elsewhere stay there. Returns
    the build that was current (None: unversioned). Temporal refuses a build none of whose
    workers has polled (BuildNotReady)."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=name, build_id=build_id, identity=identity
    )
    try:
        response = await client.workflow_service.set_worker_deployment_current_version(request)
    except RPCError as err:
        if err.status in NOT_READY:
            raise BuildNotReady(err.message) from None
        raise
    return response.previous_deployment_version.build_id or None


async def make_current_at_start(
    client: Client, name: str, build_id: str, identity: str, *, within_s: float = 60.0
) -> str | None:
    """What a worker does at start with STEPGATE_SET_CURRENT_VERSION: once its build is
    registered (Temporal registers it at the worker's first poll), make it current. The last
    build started wins, which is what one build at a time wants (`make run`, compose). Returns
    the build that was current before, if another one was."""
    deadline = time.monotonic() + within_s
    delay = 0.1
    while True:
        try:
            response = await _describe(client, name)
            info = response.worker_deployment_info if response else WorkerDeploymentInfo()
            if info.routing_config.current_deployment_version.build_id == build_id:
                return None
            if any(s.deployment_version.build_id == build_id for s in info.version_summaries):
                return await set_current(client, name, build_id, identity)
            reason = "no worker of it has polled yet"
        except (BuildNotReady, RPCError) as err:  # also Temporal briefly unavailable
            reason = str(err)
        if time.monotonic() + delay > deadline:
            raise BuildNotReady(f"build {build_id!r} could not be made current: {reason}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
