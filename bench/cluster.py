"""A Temporal cluster on PostgreSQL as processes of this one, for `scripts/cluster`, the cluster
drill and the cluster bench: PostgreSQL in a data folder of its own, the Temporal server 1.29.1
configured by deploy/temporal/server.yaml, and its Web UI when one could be built. Each can be
stopped and started again on its own, on the same ports and data; a second start over existing
data migrates (nothing to do when current) and keeps every run.

    async with Cluster(data_dir, Ports.free()) as cluster:  # PostgreSQL, schema, server, namespace
        cluster.address, cluster.client, cluster.postgres_dsn
        await cluster.restart_postgres(); await cluster.restart_server()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType

import asyncpg
import httpx
import yaml
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.config import Settings
from bench.stack import HOST, ROOT, connect
from tests.support.postgres import (
    INSTALL_HINT,
    find_bin_dir,
    give_to_server_user,
    initdb,
    server_options,
    server_user,
)
from tests.support.procs import Child, Processes, free_port, wait_for
from workflows.contract import SA_STATE

CONFIG_DIR = "deploy/temporal"  # server.yaml, ui.yaml, dynamicconfig.yaml; relative to ROOT
SUPERUSER = "postgres"
TEMPORAL_USER = "temporal"
# deploy/memory-db.sql creates the memory's role and database, as the compose stack does.
MEMORY_USER, MEMORY_DB = "stepgate", "stepgate_memory"
POSTGRES_READY_S = 60.0
SERVER_READY_S = 120.0
UI_READY_S = 30.0
SETUP_S = 180.0  # building the server (once), schema, namespace
# The server's own worker service polls this queue of its namespace once it has started.
SYSTEM_NAMESPACE, SYSTEM_QUEUE = "temporal-system", "temporal-sys-tq-scanner-taskqueue-0"
# Temporal keeps each service's ports in a smallint column: a port from 32768 up is refused.
SMALLINT_PORTS = 32768
PORTS_FROM = 20000


class ClusterError(RuntimeError):
    """The cluster could not be set up; the message says what to do."""


@dataclass(frozen=True)
class Ports:
    """Every port the cluster listens on (127.0.0.1 only). `STEPGATE_CLUSTER_<FIELD>_PORT`
    names each one in the environment (scripts/cluster sets them all)."""

    postgres: int
    temporal: int
    temporal_http: int
    history: int
    matching: int
    worker: int
    temporal_membership: int
    history_membership: int
    matching_membership: int
    worker_membership: int
    ui: int

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody listens on now; Temporal's below 32768, since it keeps them in
        PostgreSQL as a smallint (its cluster membership table)."""
        chosen: dict[str, int] = {}
        for f in fields(cls):
            port = 0
            while not port or port in chosen.values():  # each closed again: one may come twice
                port = free_port() if f.name in ("postgres", "ui") else _free_port_below()
            chosen[f.name] = port
        return cls(**chosen)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ports:
        names = {f.name: f"STEPGATE_CLUSTER_{f.name.upper()}_PORT" for f in fields(cls)}
        missing = [n for n in names.values() if not env.get(n, "").isdigit()]
        if missing:
            raise ClusterError(f"not set to a port: {', '.join(missing)}")
        return cls(**{field: int(env[name]) for field, name in names.items()})


def _free_port_below(limit: int = SMALLINT_PORTS) -> int:
    """A loopback port under `limit` nobody listens on right now (the ephemeral range that
    free_port draws from starts above it)."""
    rng = random.SystemRandom()
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, rng.randrange(PORTS_FROM, limit)))
            except OSError:
                continue
            return int(sock.getsockname()[1])


async def _run(
    argv: list[str], what: str, *, limit_s: float = SETUP_S, env: Mapping[str, str] | None = None
) -> str:
    """A setup program's standard output; ClusterError with its last words when it fails. In a
    session of its own, killed with it when this is cancelled (Ctrl-C during a start) or when
    it overruns `limit_s`."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else dict(env),
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    except BaseException:  # cancelled, or past its time
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    if proc.returncode != 0:
        last = err.decode(errors="replace")[-3000:]
        raise ClusterError(f"{what} failed ({proc.returncode}):\n{last}")
    return out.decode(errors="replace").strip()


def _inherited() -> dict[str, str]:
    """This process's environment without what would make the schema tool and the server
    disagree: both take the files' defaults for the database names and the shard count."""
    env = dict(os.environ)
    for name in ("TEMPORAL_DB_NAME", "TEMPORAL_VISIBILITY_DB_NAME", "TEMPORAL_NUM_HISTORY_SHARDS"):
        env.pop(name, None)
    return env


def _reachable_by_server_user(folder: Path) -> None:
    """As root PostgreSQL runs as another user, which must be able to walk to its folder."""
    user = server_user()
    if user is None:
        return
    for parent in folder.resolve().parents:
        if parent.stat().st_mode & 0o001 == 0:
            raise ClusterError(
                f"{parent} is closed to the '{user}' user that runs PostgreSQL: "
                "put the cluster's data in a folder that user can reach"
            )


class Cluster:
    """PostgreSQL + Temporal server (+ Web UI) in `data_dir`, children of `procs`."""

    def __init__(
        self,
        data_dir: Path,
        ports: Ports,
        *,
        procs: Processes | None = None,
        namespace: str = "default",
        dynamic_config: Mapping[str, object] | None = None,
        log_level: str = "warn",
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.ports = ports
        self.namespace = namespace
        self._own_procs = procs is None
        self.logs = self.data_dir / "logs"
        self.procs = procs or Processes(self.logs)
        self.dynamic_config = dict(dynamic_config or {})
        self.log_level = log_level
        self.postgres: Child | None = None
        self.server: Child | None = None
        self.ui: Child | None = None
        self.client: Client | None = None
        self._home: Path | None = None  # what ensure-temporal-server built
        self._secrets: dict[str, str] | None = None

    # ---- where things are ---------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{HOST}:{self.ports.temporal}"

    @property
    def http_address(self) -> str:
        return f"{HOST}:{self.ports.temporal_http}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.ports.ui}"

    @property
    def postgres_dsn(self) -> str:
        """The governed memory's database (STEPGATE_DATABASE_URL), on the same PostgreSQL."""
        return self._dsn(MEMORY_USER, "memory", MEMORY_DB)

    @property
    def superuser_dsn(self) -> str:
        """PostgreSQL's superuser, for setup and for checks a drill makes."""
        return self._dsn(SUPERUSER, "postgres", "postgres")

    def _dsn(self, user: str, secret: str, database: str) -> str:
        return f"postgresql://{user}:{self.secrets[secret]}@{HOST}:{self.ports.postgres}/{database}"

    @property
    def secrets(self) -> dict[str, str]:
        """The generated passwords (superuser, Temporal's role, the memory's role), made with
        the data folder and readable by this user alone."""
        if self._secrets is None:
            path = self.data_dir / "secrets.json"
            if not path.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                made = {k: secrets.token_hex(24) for k in ("postgres", "temporal", "memory")}
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    json.dump(made, fh)
            self._secrets = json.loads(path.read_text())
        return self._secrets

    async def home(self) -> Path:
        """The folder scripts/ensure-temporal-server fills: server, sql, schema (built once)."""
        if self._home is None:
            script = str(ROOT / "scripts" / "ensure-temporal-server")
            self._home = Path(await _run([script], "scripts/ensure-temporal-server", limit_s=900))
        return self._home

    # ---- the whole cluster --------------------------------------------------------------------

    async def start(self) -> None:
        """PostgreSQL, the roles and schemas, the server, then the namespace and Stepgate's
        search attributes: each step a no-op where the data already has it."""
        self.logs.mkdir(parents=True, exist_ok=True)
        await self.home()
        await self.start_postgres()
        await self.setup_databases()
        await self.start_server()
        await self.setup_namespace()

    async def stop(self) -> None:
        """The UI, the server, then PostgreSQL (each one only if it runs)."""
        await self.stop_ui()
        await self.stop_server()
        await self.stop_postgres()

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if self._own_procs:
            await asyncio.to_thread(self.procs.stop_all)

    async def _stop(self, child: Child | None) -> None:
        if child is not None:
            await asyncio.to_thread(self.procs.stop, child)

    # ---- PostgreSQL ---------------------------------------------------------------------------

    async def start_postgres(self) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise ClusterError(INSTALL_HINT)
        home = self.data_dir / "postgres"
        data = home / "data"
        if not (data / "PG_VERSION").exists():
            await asyncio.to_thread(self._initdb, bin_dir, home, data)
        elif not (self.data_dir / "secrets.json").exists():
            raise ClusterError(
                f"{self.data_dir / 'secrets.json'} is gone: its passwords open the database in "
                f"{data}; restore it, or remove {self.data_dir} to start afresh"
            )
        argv = [str(bin_dir / "postgres"), "-D", str(data)]
        argv += server_options(self.ports.postgres, None, durable=True)
        self.postgres = self.procs.spawn(
            "postgres", argv, dict(os.environ), ROOT, user=server_user(), stop_signal=signal.SIGINT
        )

        async def accepting() -> bool:
            try:
                conn = await asyncpg.connect(self.superuser_dsn, timeout=1)
            except asyncpg.InvalidPasswordError as err:
                raise ClusterError(f"PostgreSQL in {data} refuses secrets.json's password") from err
            except (TimeoutError, OSError, asyncpg.PostgresError):  # not up yet
                return False
            await conn.close()
            return True

        await wait_for(self.postgres, accepting, POSTGRES_READY_S, "PostgreSQL connections")

    def _initdb(self, bin_dir: Path, home: Path, data: Path) -> None:
        _reachable_by_server_user(home)
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        password_file = home / "initdb-password"
        password_file.write_text(self.secrets["postgres"])
        give_to_server_user(home, password_file)
        try:
            initdb(bin_dir, data, SUPERUSER, password_file, sync=True)
        finally:
            password_file.unlink()

    async def stop_postgres(self) -> None:
        """A fast shutdown (SIGINT): clients are disconnected, nothing committed is lost."""
        await self._stop(self.postgres)
        self.postgres = None

    async def restart_postgres(self) -> None:
        """Stop and start PostgreSQL; with the server running, returns once it serves again."""
        await self.stop_postgres()
        await self.start_postgres()
        if self.server is not None:
            await self._serving()

    async def setup_databases(self) -> None:
        """The memory's role and database (deploy/memory-db.sql), Temporal's role, then both of
        Temporal's databases created and migrated by its SQL tool (scripts/temporal-schema)."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise ClusterError(INSTALL_HINT)
        psql = [str(bin_dir / "psql"), "-h", HOST, "-p", str(self.ports.postgres), "-U", SUPERUSER]
        psql += ["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
        await _run(
            [*psql, "-f", str(ROOT / "deploy" / "memory-db.sql")],
            "deploy/memory-db.sql",
            env={**os.environ, "PGPASSWORD": self.secrets["postgres"]},
        )
        admin = self.superuser_dsn
        conn = await asyncpg.connect(admin)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", TEMPORAL_USER)
            if not exists:
                await conn.execute(f"CREATE ROLE {TEMPORAL_USER} LOGIN CREATEDB")
            # Generated here (hex): the example password memory-db.sql sets is replaced.
            for role, secret in ((TEMPORAL_USER, "temporal"), (MEMORY_USER, "memory")):
                password = self.secrets[secret]
                if not password.isalnum():  # a literal below: only what token_hex makes
                    raise ClusterError(f"{self.data_dir / 'secrets.json'}: {secret} is not hex")
                await conn.execute(f"ALTER ROLE {role} PASSWORD '{password}'")
        finally:
            await conn.close()
        home = await self.home()
        env = {
            **_inherited(),
            "SQL_HOST": HOST,
            "SQL_PORT": str(self.ports.postgres),
            "SQL_USER": TEMPORAL_USER,
            "SQL_PASSWORD": self.secrets["temporal"],
            "TEMPORAL_SQL_TOOL": str(home / "sql"),
        }
        argv = [str(ROOT / "scripts" / "temporal-schema"), str(home / "schema/postgresql/v12")]
        await _run(argv, "scripts/temporal-schema", env=env)

    # ---- the Temporal server ------------------------------------------------------------------

    def server_env(self) -> dict[str, str]:
        """The variables deploy/temporal/server.yaml reads."""
        p = self.ports
        env = {
            **_inherited(),
            "TEMPORAL_DB_HOST": HOST,
            "TEMPORAL_DB_PORT": str(p.postgres),
            "TEMPORAL_DB_USER": TEMPORAL_USER,
            "TEMPORAL_DB_PASSWORD": self.secrets["temporal"],
            "TEMPORAL_BIND_IP": HOST,
            "TEMPORAL_BROADCAST_ADDRESS": HOST,
            "TEMPORAL_PORT": str(p.temporal),
            "TEMPORAL_HTTP_PORT": str(p.temporal_http),
            "TEMPORAL_HISTORY_PORT": str(p.history),
            "TEMPORAL_MATCHING_PORT": str(p.matching),
            "TEMPORAL_WORKER_PORT": str(p.worker),
            "TEMPORAL_FRONTEND_MEMBERSHIP_PORT": str(p.temporal_membership),
            "TEMPORAL_HISTORY_MEMBERSHIP_PORT": str(p.history_membership),
            "TEMPORAL_MATCHING_MEMBERSHIP_PORT": str(p.matching_membership),
            "TEMPORAL_WORKER_MEMBERSHIP_PORT": str(p.worker_membership),
            "TEMPORAL_LOG_LEVEL": self.log_level,
            "TEMPORAL_DYNAMIC_CONFIG_FILE": str(self._dynamic_config_file()),
        }
        return env

    def _dynamic_config_file(self) -> Path:
        """deploy/temporal/dynamicconfig.yaml, or a copy of it with `dynamic_config` on top."""
        base = ROOT / CONFIG_DIR / "dynamicconfig.yaml"
        if not self.dynamic_config:
            return base
        values = yaml.safe_load(base.read_text()) or {}
        for key, value in self.dynamic_config.items():
            values[key] = [{"value": value, "constraints": {}}]
        merged = self.data_dir / "dynamicconfig.yaml"
        merged.write_text(yaml.safe_dump(values, sort_keys=True))
        return merged

    async def start_server(self) -> None:
        argv = [str(await self.home() / "server"), "--root", str(ROOT), "--config", CONFIG_DIR]
        argv += ["--env", "server", "start"]
        self.server = self.procs.spawn("temporal", argv, self.server_env(), ROOT)
        settings = Settings(temporal_address=self.address, temporal_namespace=self.namespace)
        client = self.client = await connect(self.server, settings, SERVER_READY_S)
        # The frontend answers before the server's own worker service has started; that one
        # checks the database at start and exits the process when it cannot reach it, so a
        # PostgreSQL restart then would stop the server. Once it polls, the start is over.
        request = DescribeTaskQueueRequest(
            namespace=SYSTEM_NAMESPACE,
            task_queue=TaskQueue(name=SYSTEM_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )

        async def started() -> bool:
            try:
                return bool((await client.workflow_service.describe_task_queue(request)).pollers)
            except RPCError:
                return False

        await wait_for(self.server, started, SERVER_READY_S, "its system worker's poll")

    async def stop_server(self) -> None:
        await self._stop(self.server)
        self.server = None

    async def restart_server(self) -> None:
        """Stop and start the server; returns once it serves the namespace again."""
        await self.stop_server()
        await self.start_server()
        await self._serving()

    async def setup_namespace(self) -> None:
        """The namespace (created when missing) and Stepgate's search attributes, by
        scripts/register-search-attributes as the compose stack does; then waits until a
        visibility query on one of them is answered, which is what workers and the API need."""
        cli = await _run([str(ROOT / "scripts" / "ensure-temporal")], "scripts/ensure-temporal")
        script = str(ROOT / "scripts" / "register-search-attributes")
        argv = [script, "--create-namespace", self.address, self.namespace]
        await _run(argv, "register-search-attributes", env={**os.environ, "TEMPORAL_CLI": cli})
        await self._serving()

    async def _serving(self) -> None:
        """Until the server answers a visibility query on a Stepgate search attribute: the
        namespace is served (also after PostgreSQL came back) and the attribute is known."""
        client, server = self.client, self.server
        if client is None or server is None:
            raise ClusterError("the Temporal server is not running")

        async def answered() -> bool:
            try:
                await client.count_workflows(f"{SA_STATE.name} = 'running'")
            except RPCError:  # namespace not found, attribute unknown, no database yet
                return False
            return True

        await wait_for(server, answered, SERVER_READY_S, "visibility queries")

    # ---- the Web UI ---------------------------------------------------------------------------

    async def start_ui(self) -> str | None:
        """The Web UI on its port; returns why not when no UI server could be built."""
        script = str(ROOT / "scripts" / "ensure-temporal-server")
        try:
            binary = await _run([script, "ui"], "scripts/ensure-temporal-server ui", limit_s=900)
        except ClusterError as err:
            return str(err).strip().splitlines()[-1]
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_UI_HOST": HOST,
            "TEMPORAL_UI_PORT": str(self.ports.ui),
            "TEMPORAL_CORS_ORIGINS": "",
            "TEMPORAL_CODEC_ENDPOINT": "",
        }
        argv = [binary, "--root", str(ROOT), "--config", CONFIG_DIR, "--env", "ui"]
        self.ui = self.procs.spawn("temporal-ui", [*argv, "start"], env, ROOT)

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient(timeout=1.0) as http:
                    return (await http.get(f"http://{HOST}:{self.ports.ui}/")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(self.ui, serving, UI_READY_S, "Web UI page")
        return None

    async def stop_ui(self) -> None:
        await self._stop(self.ui)
        self.ui = None
