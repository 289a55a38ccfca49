"""`python -m bench.cluster_up DATA_DIR` (what `scripts/cluster` runs after its checks): the
production topology on one machine. PostgreSQL, the Temporal server and its Web UI
(bench/cluster.py), then worker processes (`python worker.py`, one build, made current) and the
API (`python -m api`), all children of this process; prints a banner once the API answers and
every worker polls, and stops them all, newest first, on Ctrl-C or SIGTERM (further signals are
ignored meanwhile). A child that exits stops the rest.

Reads the ports from `STEPGATE_CLUSTER_*_PORT` (scripts/cluster sets them all, see Ports and
STEPGATE_CLUSTER_API_PORT), `STEPGATE_CLUSTER_WORKERS` (2), and the admin key to print from
`STEPGATE_CLUSTER_ADMIN_KEY`, which no child inherits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from activities.config import DEFAULT_TASK_QUEUE
from bench.cluster import Cluster, ClusterError, Ports
from bench.stack import HOST, ROOT, spawn_api
from tests.support.procs import Child, Processes, StartupFailed, wait_for
from workflows.builds import default_build_id

WORKERS_READY_S = 90.0
WATCH_S = 1.0  # how often the running stack checks that every child is alive
ADMIN_KEY_ENV = "STEPGATE_CLUSTER_ADMIN_KEY"
EXIT_ON = {signal.SIGINT: 130, signal.SIGTERM: 143}


def app_env(cluster: Cluster, api_port: int) -> dict[str, str]:
    """What the workers and the API are told: this cluster, its PostgreSQL for the memory, the
    data folder; the operator's own settings otherwise."""
    env = {k: v for k, v in os.environ.items() if k != ADMIN_KEY_ENV}
    env.update(
        TEMPORAL_ADDRESS=cluster.address,
        TEMPORAL_NAMESPACE=cluster.namespace,
        STEPGATE_DATA=str(cluster.data_dir),
        STEPGATE_DATABASE_URL=cluster.postgres_dsn,
        # Tools may never reach the server's HTTP API or its Web UI (docs/tools.md).
        STEPGATE_TEMPORAL_HTTP_ADDRESS=cluster.http_address,
        STEPGATE_UI_URL=cluster.ui_url,
        STEPGATE_API_HOST=HOST,
        STEPGATE_API_PORT=str(api_port),
    )
    env.setdefault("STEPGATE_PUBLIC_URL", f"http://localhost:{api_port}")
    # Every worker runs the same build and makes it current at start, as `make run` does.
    env.setdefault("STEPGATE_SET_CURRENT_VERSION", "true")
    return env


async def workers_polling(cluster: Cluster, workers: list[Child], task_queue: str) -> None:
    """Until Temporal lists a workflow poller of each worker process on the task queue."""
    client = cluster.client
    if client is None:
        raise ClusterError("the Temporal server is not running")
    request = DescribeTaskQueueRequest(
        namespace=cluster.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    for worker in workers:
        identity = f"{worker.pid}@"

        async def polling(identity: str = identity) -> bool:
            response = await client.workflow_service.describe_task_queue(request)
            return any(p.identity.startswith(identity) for p in response.pollers)

        await wait_for(worker, polling, WORKERS_READY_S, "a poll of its task queue")


async def bring_up(
    cluster: Cluster, api_port: int, workers: int
) -> tuple[list[Child], str | None, str]:
    """Everything, in order; returns the workers, why there is no Web UI (None: there is one)
    and the API's URL."""
    await cluster.start()
    no_ui = await cluster.start_ui()
    env = app_env(cluster, api_port)
    spawned = [
        cluster.procs.spawn(f"worker-{i}", [sys.executable, "worker.py"], env, ROOT)
        for i in range(1, workers + 1)
    ]
    task_queue = env.get("STEPGATE_TASK_QUEUE") or DEFAULT_TASK_QUEUE
    (_, url), _ = await asyncio.gather(
        spawn_api(cluster.procs, env, api_port),
        workers_polling(cluster, spawned, task_queue),
    )
    return spawned, no_ui, url


def banner(cluster: Cluster, workers: int, no_ui: str | None, api_port: int, key: str) -> str:
    ui = cluster.ui_url if no_ui is None else f"not running: {no_ui}"
    lines = [
        "",
        "  Stepgate is running on a Temporal cluster (Ctrl-C stops everything).",
        f"    Approvals:   http://localhost:{api_port}/ui   (sign in with an API key)",
        f"    API docs:    http://localhost:{api_port}/docs",
        f"    Temporal:    {cluster.address} (HTTP API {cluster.http_address}),"
        f" namespace {cluster.namespace}",
        f"    Temporal UI: {ui}",
        f"    PostgreSQL:  {HOST}:{cluster.ports.postgres} (passwords in"
        f" {cluster.data_dir / 'secrets.json'})",
        f"    Workers:     {workers} x python worker.py, build {default_build_id()}",
        f"    Data:        {cluster.data_dir}   (logs in {cluster.logs})",
    ]
    if key:
        lines.append(f"    Admin key:   {key}   (Authorization: Bearer <key>)")
    else:
        lines.append(f"    API keys:    {os.environ.get('STEPGATE_API_KEYS_FILE', '')}")
    return "\n".join([*lines, ""])


async def watch(children: list[Child], stop: asyncio.Event) -> int:
    """Until a signal (0) or until a child exits (1, saying which)."""
    while not stop.is_set():
        for child in children:
            if not child.alive():
                code = child.popen.returncode
                print(
                    f"cluster: {child.name} exited ({code}); stopping the others", file=sys.stderr
                )
                print(child.tail(), file=sys.stderr)
                return 1
        try:
            await asyncio.wait_for(stop.wait(), WATCH_S)
        except TimeoutError:
            pass
    return 0


async def serve(data_dir: Path) -> int:
    key = os.environ.pop(ADMIN_KEY_ENV, "")
    ports = Ports.from_env(os.environ)
    api_port = int(os.environ.get("STEPGATE_CLUSTER_API_PORT", "8001"))
    workers = int(os.environ.get("STEPGATE_CLUSTER_WORKERS", "2"))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []
    with Processes(data_dir / "logs") as procs:
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        cluster = Cluster(data_dir, ports, procs=procs)
        startup = asyncio.ensure_future(bring_up(cluster, api_port, workers))

        def on_signal(sig: int) -> None:
            if not received:
                received.append(sig)
                startup.cancel()
                stop.set()

        for sig in EXIT_ON:
            loop.add_signal_handler(sig, on_signal, sig)
        status = 0
        try:
            _, no_ui, _ = await startup
            print(banner(cluster, workers, no_ui, api_port, key), flush=True)
            status = await watch(list(procs.children), stop)
        except asyncio.CancelledError:
            if not received:
                raise
        except (ClusterError, StartupFailed) as err:
            print(f"cluster: {err}", file=sys.stderr)
            status = 1
        finally:
            print("cluster: stopping...", file=sys.stderr, flush=True)
            await asyncio.to_thread(procs.stop_all)
        return EXIT_ON[signal.Signals(received[0])] if received else status


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m bench.cluster_up DATA_DIR", file=sys.stderr)
        return 2
    return asyncio.run(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
