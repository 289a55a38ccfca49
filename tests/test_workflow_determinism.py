"""Workflow code runs outside Temporal's sandbox (worker.workflow_runner), so nothing at run time
stops it from reading the clock or the disk: this check walks the workflow modules' source and
refuses what would make a replay differ from the run it replays. Replaying tests/histories
(tests/test_replay.py) pins the rest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"

# Modules in the package that never run inside a workflow, each with why it may do what workflow
# code may not.
NOT_WORKFLOW_CODE = {
    "client.py": "the data converter and client set-up, used by the API, CLI and worker",
    "language/catalog_files.py": "reads the catalog's definition files, for the API and worker",
    "query_text.py": "visibility query literals, for the API and the deployment listing",
    "builds.py": "hashes the workflow code's files for the worker's build id, at its start",
    "deployment.py": "Worker Deployment calls and their waits, for the worker's start and the API",
}

# Calls that read the clock, randomness, the environment, files, or sleep on the wall clock.
FORBIDDEN_CALLS = {
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "date.today",
    "time.time",
    "time.time_ns",
    "time.monotonic",
    "time.perf_counter",
    "time.sleep",
    "asyncio.sleep",
    "uuid.uuid1",
    "uuid.uuid4",
    "uuid4",
    "os.getenv",
    "open",
    "os.open",
    "os.fdopen",
    "input",
}
FORBIDDEN_MODULES = {
    "random",
    "secrets",
    "socket",
    "subprocess",
    "threading",
    "requests",
    "httpx",
    "aiohttp",
    "sqlalchemy",
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in FORBIDDEN_CALLS:
            found.append(f"{path.name}:{node.lineno}: calls {_name(node.func)}")
        elif isinstance(node, ast.Attribute) and _name(node) == "os.environ":
            found.append(f"{path.name}:{node.lineno}: reads os.environ")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                if name and name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{path.name}:{node.lineno}: imports {name}")
    return found


def workflow_modules() -> list[Path]:
    return [
        p
        for p in sorted(WORKFLOWS.rglob("*.py"))
        if p.relative_to(WORKFLOWS).as_posix() not in NOT_WORKFLOW_CODE
    ]


def test_the_check_sees_the_workflow_modules() -> None:
    names = {p.name for p in workflow_modules()}
    assert {"pipeline.py", "governed.py", "scheduler.py", "publish.py"} <= names
    assert all((WORKFLOWS / n).exists() for n in NOT_WORKFLOW_CODE), "a listed module is gone"


@pytest.mark.parametrize("path", workflow_modules(), ids=lambda p: p.stem)
def test_workflow_module_reads_no_clock_randomness_or_io(path: Path) -> None:
    assert _offences(path) == []


def test_the_check_catches_a_clock_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import random\nimport os\nfrom datetime import datetime\n"
        "def f():\n    return datetime.now(), os.environ['X'], open('x')\n"
    )
    assert sorted(o.split(": ", 1)[1] for o in _offences(bad)) == [
        "calls datetime.now",
        "calls open",
        "imports random",
        "reads os.environ",
    ]
