"""Which build a worker runs as. By default a build is the package version plus a hash of the
workflow code, so any change to what runs inside workflows is a new Worker Deployment Version
and runs started on the old code finish on it (docs/versioning.md)."""

from __future__ import annotations

import ast
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from activities.config import Settings

DISTRIBUTION = "stepgate"
# The folder that holds the `workflows` and `activities` packages (a checkout or site-packages).
ROOT = Path(__file__).resolve().parent.parent
# The modules whose classes Temporal runs as workflows; what they import is workflow code too.
WORKFLOW_MODULES = ("workflows.pipeline", "workflows.governed")
HASH_CHARS = 12


def package_version() -> str:
    """The installed package's version (pyproject.toml `version`)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a tree that was never installed
        return "0"


def _file(root: Path, module: str) -> Path | None:
    path = root.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> list[str]:
    """Every absolute module name `path` imports, also inside functions (`from x import y`
    gives `x` and `x.y`: y may be a module)."""
    names = []
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


def workflow_sources(root: Path = ROOT) -> list[Path]:
    """The files of workflow code, sorted: every `workflows` module the workflow modules reach
    through imports (with the packages that hold them), and the `activities` modules those
    import directly (models, masking, ...), whose own imports run outside workflows. Plumbing
    such as workflows/client.py, the catalog or the tools is not in it."""
    found: set[Path] = set()
    todo = list(WORKFLOW_MODULES)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        if parts[0] == "activities":
            path = _file(root, name)
            found.update([path] if path and path.name != "__init__.py" else [])
            continue
        if parts[0] != "workflows":
            continue
        for depth in range(1, len(parts) + 1):
            path = _file(root, ".".join(parts[:depth]))
            if path is not None and path not in found:
                found.add(path)
                todo += _imports(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def code_hash(root: Path = ROOT) -> str:
    """A short digest of the workflow code's files: their paths and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in workflow_sources(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:HASH_CHARS]


def default_build_id(root: Path = ROOT) -> str:
    """`<package version>+<code hash>`, e.g. `0.2.0+3f2a9c1b7d4e`."""
    return f"{package_version()}+{code_hash(root)}"


def build_id(settings: Settings) -> str:
    """STEPGATE_BUILD_ID, or the default."""
    return settings.stepgate_build_id or default_build_id()


def deployment_version(settings: Settings) -> WorkerDeploymentVersion:
    return WorkerDeploymentVersion(settings.stepgate_deployment_name, build_id(settings))


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """How the worker polls: as its deployment version, every workflow it runs pinned to it;
    None (unversioned) when STEPGATE_WORKER_VERSIONING is off.

    The workflow classes declare no `versioning_behavior` of their own: on an unversioned
    worker (the test suite's) every workflow task of a workflow that declares one is refused
    ("versioning behavior cannot be specified without deployment options"), so pinning is the
    versioned worker's default for every workflow it registers."""
    if not settings.stepgate_worker_versioning:
        return None
    return WorkerDeploymentConfig(
        version=deployment_version(settings),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )
