"""Artifact storage: files kept per workflow run, behind an interface an object store can implement."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import Protocol

from activities.errors import fatal
from activities.models import ArtifactRef

_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


class ArtifactStore(Protocol):
    async def put(self, run: str, name: str, data: bytes, media_type: str) -> ArtifactRef: ...
    async def get(self, run: str, name: str) -> tuple[bytes, ArtifactRef]: ...
    async def read_ref(self, ref: ArtifactRef) -> bytes: ...


def _check_name(name: str) -> list[str]:
    parts = name.strip("/").split("/")
    if not name or any(p in ("", ".", "..") or not _SAFE_SEGMENT.match(p) for p in parts):
        raise fatal(
            f"artifact name {name!r} must be a relative path of letters, digits, '.', '_' and '-'",
            "InvalidArtifactName",
        )
    return parts


class LocalArtifactStore:
    """Files under `<root>/<workflow id>/<name>`; the workflow id is made filesystem-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, run: str, name: str) -> Path:
        run_dir = re.sub(r"[^A-Za-z0-9._-]", "_", run) or "_"
        return self.root.joinpath(run_dir, *_check_name(name))

    async def put(self, run: str, name: str, data: bytes, media_type: str) -> ArtifactRef:
        path = self._path(run, name)
        digest = hashlib.sha256(data).hexdigest()

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write-then-rename so a reader never sees half a file, even across a crash.
            tmp = path.with_name(f".{path.name}.{digest[:12]}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)

        await asyncio.to_thread(write)
        return ArtifactRef(
            uri=path.as_uri(),
            path=str(path.relative_to(self.root)),
            size=len(data),
            sha256=digest,
            media_type=media_type,
        )

    async def get(self, run: str, name: str) -> tuple[bytes, ArtifactRef]:
        path = self._path(run, name)
        if not path.is_file():
            raise fatal(f"artifact {name!r} does not exist for run {run!r}", "ArtifactNotFound")
        data = await asyncio.to_thread(path.read_bytes)
        ref = ArtifactRef(
            uri=path.as_uri(),
            path=str(path.relative_to(self.root)),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        return data, ref

    async def read_ref(self, ref: ArtifactRef) -> bytes:
        path = (self.root / ref.path).resolve()
        if self.root not in path.parents or not path.is_file():
            raise fatal(f"artifact {ref.path!r} is not in this store", "ArtifactNotFound")
        data = await asyncio.to_thread(path.read_bytes)
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise fatal(f"artifact {ref.path!r} changed since it was written", "ArtifactCorrupt")
        return data
