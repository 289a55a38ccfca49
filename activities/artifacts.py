"""Artifact storage: files kept per workflow run, behind an interface an object store can implement."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import Protocol

from activities.errors import fatal
from activities.models import ArtifactRef

_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
# Enough of the workflow id to recognise a folder by eye; the hash is what keeps runs apart.
_READABLE_CHARS = 64
_HASH_CHARS = 32
# A run's folder is its shell workspace too: only the worker (and the program) may enter it.
_RUN_DIR_MODE = 0o700


class ArtifactStore(Protocol):
    async def put(self, run: str, name: str, data: bytes, media_type: str) -> ArtifactRef: ...
    async def get(self, run: str, name: str) -> tuple[bytes, ArtifactRef]: ...
    async def read_ref(self, ref: ArtifactRef) -> bytes: ...


def run_folder(run: str) -> str:
    """The folder name of a run: `<readable id>-<sha256 of the exact id>`.

    Replacing unsafe characters alone mapped `hr:1` and `hr_1` to one folder; the hash of the
    exact id keeps every run apart (also on case-insensitive file systems), and the name stays
    short enough for any file system whatever the id's length.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", run)[:_READABLE_CHARS].lstrip(".")
    digest = hashlib.sha256(run.encode()).hexdigest()[:_HASH_CHARS]
    return f"{readable}-{digest}" if readable else digest


def run_dir(root: Path, run: str) -> Path:
    """Where a run's files live under `root` (also the run's shell.run workspace)."""
    return root / run_folder(run)


def _check_name(name: str) -> list[str]:
    parts = name.strip("/").split("/")
    if not name or any(p in ("", ".", "..") or not _SAFE_SEGMENT.match(p) for p in parts):
        raise fatal(
            f"artifact name {name!r} must be a relative path of letters, digits, '.', '_' and '-'",
            "InvalidArtifactName",
        )
    return parts


def _open_dir(root: Path, parts: list[str], *, create: bool) -> int:
    """An fd of `root/parts...`, never following a symbolic link below `root`.

    A run's folder is writable by the programs shell.run starts: one could plant a link
    (`outputs -> /etc`) to make the worker read or write outside the store on its behalf.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(parts):
            if create:
                try:
                    os.mkdir(part, _RUN_DIR_MODE if depth == 0 else 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read(root: Path, parts: list[str]) -> bytes:
    folder = _open_dir(root, parts[:-1], create=False)
    try:
        # O_NONBLOCK: a FIFO planted under an artifact's name must not hang the reader.
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    finally:
        os.close(folder)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file")
        return f.read()


def _write(root: Path, parts: list[str], data: bytes, digest: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    folder = _open_dir(root, parts[:-1], create=True)
    try:
        # Write-then-rename so a reader never sees half a file, even across a crash; the
        # rename replaces whatever is under the name (a link included) without following it.
        tmp = f".{parts[-1]}.{digest[:12]}.tmp"
        try:
            os.unlink(tmp, dir_fd=folder)
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(tmp, flags, 0o644, dir_fd=folder), "wb") as f:
            f.write(data)
        os.replace(tmp, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


class LocalArtifactStore:
    """Files under `<root>/<run folder>/<name>` (see `run_folder`)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _ref(
        self, parts: list[str], data: bytes, digest: str, media_type: str | None = None
    ) -> ArtifactRef:
        return ArtifactRef(
            uri=self.root.joinpath(*parts).as_uri(),
            path="/".join(parts),
            size=len(data),
            sha256=digest,
            **({"media_type": media_type} if media_type else {}),
        )

    async def put(self, run: str, name: str, data: bytes, media_type: str) -> ArtifactRef:
        parts = [run_folder(run), *_check_name(name)]
        digest = hashlib.sha256(data).hexdigest()
        try:
            await asyncio.to_thread(_write, self.root, parts, data, digest)
        except OSError as err:
            if err.errno not in (errno.ENOTDIR, errno.EISDIR, errno.ELOOP):
                raise
            raise fatal(
                f"artifact {name!r} cannot be written: a file or a symbolic link is in its way",
                "ArtifactUnwritable",
            ) from None
        return self._ref(parts, data, digest, media_type)

    async def get(self, run: str, name: str) -> tuple[bytes, ArtifactRef]:
        parts = [run_folder(run), *_check_name(name)]
        try:
            data = await asyncio.to_thread(_read, self.root, parts)
        except OSError:
            # Missing, a folder, a link or a special file: none of them is an artifact.
            raise fatal(
                f"artifact {name!r} does not exist for run {run!r}", "ArtifactNotFound"
            ) from None
        return data, self._ref(parts, data, hashlib.sha256(data).hexdigest())

    async def read_ref(self, ref: ArtifactRef) -> bytes:
        """The bytes a recorded reference points to, by its path: references recorded before
        the folder layout changed (`hr_1/...`) still resolve."""
        parts = ref.path.split("/")
        if any(p in ("", ".", "..") or not _SAFE_SEGMENT.match(p) for p in parts):
            raise fatal(f"artifact {ref.path!r} is not in this store", "ArtifactNotFound")
        try:
            data = await asyncio.to_thread(_read, self.root, parts)
        except OSError:
            raise fatal(f"artifact {ref.path!r} is not in this store", "ArtifactNotFound") from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise fatal(f"artifact {ref.path!r} changed since it was written", "ArtifactCorrupt")
        return data
