"""Helpers for shell.run tests: the programs they run, their settings, and a look at the
processes a program left behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from activities.config import Settings

# The system's Python: programs may run as another user (the tests run as root on CI) or in a
# sandbox that mounts only the system folders, so a virtualenv's interpreter would not do.
PY = "/usr/bin/python3"
ALLOW = [PY, "sh", "echo", "cat", "true"]
# CI installs bubblewrap and sets this, so a sandbox that stopped working fails there instead
# of being skipped. Read at import: the suite clears STEPGATE_* variables around each test.
REQUIRE_BWRAP = os.environ.get("STEPGATE_TEST_REQUIRE_BWRAP") == "1"


def shell_settings(root: Path, sandbox: str, **more: Any) -> Settings:
    """Settings for shell tests: the reachable root, the mode, the test programs allowed."""
    fields: dict[str, Any] = {
        "stepgate_data": root / "data",
        "stepgate_artifact_root": root / "artifacts",
        "stepgate_shell_allow": ALLOW,
        "stepgate_shell_sandbox": sandbox,
        **more,
    }
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds `marker`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
