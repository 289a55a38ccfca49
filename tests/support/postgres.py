"""A private PostgreSQL server from the machine's own binaries, for the tests and the bench.

`initdb` into a fresh folder, `pg_ctl start` on a free port on 127.0.0.1 (as the `postgres` user
when running as root, since PostgreSQL refuses root), and `pg_ctl stop` at the end. Debian keeps
the binaries in /usr/lib/postgresql/<version>/bin, off PATH, so that is searched too. The cluster
(bench/cluster.py) runs its server with the same `initdb` and options, as a child of its own.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import asyncpg

from tests.support.procs import free_port

INSTALL_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin: install them with `apt-get install postgresql` (Debian/Ubuntu) "
    "or `brew install postgresql` (macOS)"
)
SERVER_USER = "postgres"
START_TIMEOUT_S = 60
USER = "superuser"
PASSWORD = "stepgate-test"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name.split(".")[0] or 0),
    )
    return Path(versions[-1]).parent if versions else None


def server_user() -> str | None:
    """Whom the server runs as: the `postgres` user when we are root (PostgreSQL refuses root),
    else nobody else (None: ourselves)."""
    return SERVER_USER if os.geteuid() == 0 else None


def give_to_server_user(*paths: Path) -> None:
    """Hand these files and folders to the server's user, when it is not us."""
    user = server_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def run_tool(bin_dir: Path, *argv: str, timeout: float = START_TIMEOUT_S) -> None:
    """One of PostgreSQL's programs (`argv[0]` in `bin_dir`) as the server's user; raises with
    its output when it fails."""
    cmd = [str(bin_dir / argv[0]), *argv[1:]]
    user = server_user()
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr or out.stdout}")


def initdb(bin_dir: Path, data: Path, superuser: str, password_file: Path, *, sync: bool) -> None:
    """A new cluster in `data` (its parent must be the server user's), every login by password
    (scram-sha-256, over TCP and the socket alike); `sync=False` skips flushing it to disk."""
    run_tool(
        bin_dir,
        "initdb",
        "-D",
        str(data),
        "-U",
        superuser,
        "--pwfile",
        str(password_file),
        "--auth",
        "scram-sha-256",
        "--encoding",
        "UTF8",
        "--locale",
        "C",
        *(() if sync else ("--no-sync",)),
    )


def server_options(port: int, socket_dir: Path | None, *, durable: bool) -> list[str]:
    """The `postgres` options: TCP on 127.0.0.1:`port` only, the socket in `socket_dir` (None:
    no socket); `durable=False` for throwaway data (nothing waits for the disk)."""
    options = ["-c", "listen_addresses=127.0.0.1", "-p", str(port)]
    options += ["-c", f"unix_socket_directories={socket_dir or ''}"]
    if not durable:
        options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    return options


class LocalPostgres:
    """One throwaway cluster; `url(db)` names a database in it for STEPGATE_DATABASE_URL."""

    def __init__(self, folder: Path, bin_dir: Path) -> None:
        self.folder = folder
        self.bin_dir = bin_dir
        self.data = folder / "pgdata"
        self.port = free_port()

    def _run(self, *argv: str, timeout: float = START_TIMEOUT_S) -> None:
        run_tool(self.bin_dir, *argv, timeout=timeout)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        give_to_server_user(self.folder, password_file)
        initdb(self.bin_dir, self.data, USER, password_file, sync=False)
        options = shlex.join(server_options(self.port, self.folder, durable=False))
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"memory_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')  # a name made above, never input
        finally:
            await conn.close()
        return self.url(name)
