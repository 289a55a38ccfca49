"""The packages show the architecture, and these checks keep their import rules
(docs/architecture.md, "What each package may import"): api -> workflows -> activities, the rules
import nothing from the Temporal shells, nothing from Temporal and nothing that does I/O."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("api", "activities", "workflows")
# Product modules stay small enough to read in one sitting.
MAX_MODULE_LINES = 350

# What workflow code may take from `activities`: models and names, the pure masking and document
# parsing, and what the definition language checks against (the tool registry, JSON Schema).
WORKFLOWS_MAY_IMPORT = {
    "activities.models",
    "activities.notice",
    "activities.masking",
    "activities.documents",
    "activities.config",
    "activities.registry",
    "activities.jsonschema_safe",
}
# What the rules may import from the project: each other, the language, the payload models, and
# from `activities` only its models and masking.
RULES_MAY_IMPORT = (
    "workflows.rules",
    "workflows.language",
    "workflows.models",
    "workflows.agent_models",
    "workflows.names",
    "activities.models",
    "activities.notice",
    "activities.masking",
    "activities.documents",
)
# Loaded by importing every rules module, none of these may appear: Temporal, the HTTP clients,
# the database drivers, the web framework, processes and the event loop.
NOT_IN_RULES = (
    "temporalio",
    "httpx",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "fastapi",
    "uvicorn",
    "structlog",
    "subprocess",
    "asyncio",
    "sqlite3",
    "urllib.request",
    "http.client",
    "activities.registry",
    "activities.runtime",
    "activities.tools",
    "activities.memory",
    "activities.egress_client",
)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports (absolute names; `from x import y` gives `x.y` and `x`)."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def modules(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def where(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


def offences(
    paths: list[Path], refused: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    out = []
    for path in paths:
        for line, name in imports_of(path):
            hit = any(name == r or name.startswith(r + ".") for r in refused)
            fine = any(name == a or name.startswith(a + ".") for a in allowed)
            if hit and not fine:
                out.append(f"{where(path)}:{line}: imports {name}")
    return out


def test_activities_import_neither_workflows_nor_api() -> None:
    """The lowest layer: tools and their runtime never reach up."""
    assert offences(modules("activities"), ("workflows", "api")) == []


def test_workflows_and_the_worker_import_no_api_code() -> None:
    """The worker process runs without the API's code (the catalog lives in the language)."""
    paths = [*modules("workflows"), ROOT / "worker.py"]
    assert offences(paths, ("api",)) == []


def test_workflows_take_only_models_and_names_from_activities() -> None:
    """Workflow code uses activities' models and names, never a tool or the runtime."""
    found = []
    for path in modules("workflows"):
        for line, name in imports_of(path):
            if name.startswith("activities.") and not any(
                name == a or name.startswith(a + ".") for a in WORKFLOWS_MAY_IMPORT
            ):
                found.append(f"{where(path)}:{line}: imports {name}")
    assert found == []


def test_rules_import_nothing_from_the_shells() -> None:
    """The rules see the state, the language and the models, never the Temporal shells."""
    assert offences(modules("workflows/rules"), ("workflows", "activities"), RULES_MAY_IMPORT) == []


def test_rules_load_neither_temporal_nor_io() -> None:
    """Importing every rules module, with everything it imports in turn, loads no Temporal SDK,
    no HTTP client, database driver, web framework, process or event-loop module."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import workflows.rules as r\n"
        "for m in pkgutil.iter_modules(r.__path__):\n"
        "    importlib.import_module('workflows.rules.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    assert "workflows.rules.scheduler" in loaded, "control: the rules were imported"
    bad = [m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_IN_RULES)]
    assert bad == []


def test_product_code_imports_neither_tests_nor_bench() -> None:
    """The product ships alone: nothing in it reaches for the suite's or the bench's code."""
    paths = [*modules(*PRODUCT), ROOT / "worker.py"]
    assert offences(paths, ("tests", "bench")) == []


def test_tests_take_helpers_from_tests_support_not_bench() -> None:
    """Test helpers live in tests/support; only the tests of the bench itself import bench."""
    bench_tests = {
        "test_bench_baseline.py",
        "test_bench_dynamic.py",
        "test_drill.py",
        "test_drill_cluster.py",
        "test_cluster.py",
        "test_bench_cluster.py",
    }
    paths = [p for p in modules("tests") if p.name not in bench_tests]
    assert offences(paths, ("bench",)) == []


@pytest.mark.parametrize(
    "path",
    [*modules(*PRODUCT), ROOT / "worker.py"],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_product_module_stays_readable(path: Path) -> None:
    """No product module grows past the size one reads in a sitting."""
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by what its parts do"


def test_the_import_check_catches_a_violation(tmp_path: Path) -> None:
    """Control: an upward import is reported with its line."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom workflows.pipeline import PipelineWorkflow\n")
    assert offences([bad], ("workflows",)) == [
        "bad.py:2: imports workflows.pipeline",
        "bad.py:2: imports workflows.pipeline.PipelineWorkflow",
    ]
    assert offences([bad], ("workflows",), ("workflows.pipeline",)) == []
