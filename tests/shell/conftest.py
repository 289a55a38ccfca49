"""Fixtures for shell.run tests: both sandbox modes, and a workspace root every user can reach."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from activities import default_registry
from activities.config import Settings
from activities.runtime import ToolActivities
from activities.tools._sandbox import choose_sandbox
from activities.tools._shell_policy import run_as
from tests.shell.helpers import REQUIRE_BWRAP, shell_settings


@pytest.fixture
def shell_root() -> Iterator[Path]:
    """An artifact root whose parents every user may enter: under root, programs run as nobody,
    and pytest's own temporary folders are closed to other users."""
    path = Path(tempfile.mkdtemp(prefix="stepgate-shell-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["none", "bwrap"])
async def sandbox(request: pytest.FixtureRequest, shell_root: Path) -> str:
    """Each sandbox mode; bwrap only where it works here (the same trial run the worker makes)."""
    mode: str = request.param
    if mode == "bwrap":
        settings = Settings(stepgate_artifact_root=shell_root, stepgate_shell_sandbox="auto")
        if await choose_sandbox(settings, run_as(settings)) != "bwrap":
            why = "bubblewrap is missing or does not work on this machine"
            if REQUIRE_BWRAP:
                pytest.fail(f"{why}, and STEPGATE_TEST_REQUIRE_BWRAP=1")
            pytest.skip(f"{why} (install bubblewrap to run the sandbox tests)")
    return mode


@pytest.fixture
async def shell_acts(
    shell_root: Path, sandbox: str
) -> AsyncIterator[Callable[..., ToolActivities]]:
    """Builds ToolActivities for shell tests in the current sandbox mode; kwargs change settings."""
    built: list[ToolActivities] = []

    def make(**more: Any) -> ToolActivities:
        acts = ToolActivities(
            default_registry(entry_points=False), shell_settings(shell_root, sandbox, **more)
        )
        built.append(acts)
        return acts

    yield make
    for acts in built:
        await acts.http.aclose()
