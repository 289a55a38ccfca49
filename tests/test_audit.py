"""`make audit` tells "nothing was checked" apart from "nothing was found"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

SKIPPED = {"name": "httpx", "skip_reason": "Dependency not found on PyPI and could not be audited"}
CLEAN = {"name": "pyyaml", "version": "6.0.3", "vulns": []}
VULNERABLE = {
    "name": "pip",
    "version": "23.2.1",
    "vulns": [{"id": "GHSA-mq26-g339-26xf", "fix_versions": ["23.3"]}],
}


def audit(tmp_path: Path, dependencies: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    """Run scripts/audit with a Python whose `-m pip_audit` writes this report (the rest of the
    script runs on the real interpreter)."""
    fake = tmp_path / "python"
    report = json.dumps({"dependencies": dependencies})
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$1 $2" = "-m pip_audit" ]; then\n'
        '  while [ "$1" != "--output" ]; do shift; done\n'
        f"  printf '%s' '{report}' > \"$2\"; exit 0\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake)}
    return subprocess.run(
        [str(ROOT / "scripts" / "audit")], capture_output=True, text=True, env=env, timeout=60
    )


def test_audit_says_not_checked_when_the_source_answered_for_nothing(tmp_path: Path) -> None:
    """Every package skipped (a mirror without the advisory API) is exit 3 and NOT CHECKED, never
    pip-audit's own "No known vulnerabilities found"."""
    result = audit(tmp_path, [SKIPPED, {**SKIPPED, "name": "uvicorn"}])
    assert result.returncode == 3, result
    assert "NOT CHECKED" in result.stdout and "none of the 2 installed packages" in result.stdout


@pytest.mark.parametrize(
    ("deps", "code", "says"),
    [
        ([CLEAN, SKIPPED], 0, "1 packages checked against 'pypi', 0 vulnerable, 1 not found"),
        ([CLEAN, VULNERABLE], 1, "VULNERABLE pip 23.2.1: GHSA-mq26-g339-26xf (fixed in: 23.3)"),
    ],
    ids=["clean", "vulnerable"],
)
def test_audit_exit_code_follows_what_was_found(
    tmp_path: Path, deps: list[dict[str, Any]], code: int, says: str
) -> None:
    """Checked packages with no advisory exit 0; an advisory exits 1 and is listed."""
    result = audit(tmp_path, deps)
    assert result.returncode == code, result
    assert says in result.stdout
