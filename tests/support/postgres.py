"""A private PostgreSQL server from the machine's own binaries, for the tests and the bench.

`initdb` into a fresh folder, `pg_ctl start` on a free port on 127.0.0.1 (as the `postgres` user
when running as root, since PostgreSQL refuses root), and `pg_ctl stop` at the end. Debian keeps
the binaries in /usr/lib/postgresql/<version>/bin, off PATH, so that is searched too.
"""

from __future__ import annotations

import glob
import os
import pwd
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


class LocalPostgres:
    """One throwaway cluster; `url(db)` names a database in it for STEPGATE_DATABASE_URL."""

    def __init__(self, folder: Path, bin_dir: Path) -> None:
        self.folder = folder
        self.bin_dir = bin_dir
        self.data = folder / "pgdata"
        self.port = free_port()
        self._as_root = os.geteuid() == 0

    def _run(self, *argv: str, timeout: float = START_TIMEOUT_S) -> None:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if out.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr or out.stdout}")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        if self._as_root:
            entry = pwd.getpwnam(SERVER_USER)
            for path in (self.folder, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} "
            # Throwaway data: no crash safety needed, so nothing waits for the disk.
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
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
