"""The document checker processes: apart from the API (their own session, a lower priority),
stopped past their CPU budget, gone with the API process, and replaced by the API's threads when
the tool registry cannot be copied to them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import BaseModel, create_model

from activities import default_registry
from activities.registry import Tool, ToolRegistry
from api.admission import ParsePool
from api.checker import Checker, OverBudget
from api.checker_process import CHECKER_NICENESS
from api.checks import check_definition, read_definition
from tests.api.test_starvation import HEAVY_YAML
from tests.conftest import ROOT
from tests.support import util

SMALL = {"name": "small", "steps": [{"id": "a", "tool": "data.echo", "with": {"v": 1}}]}


@pytest.fixture
async def checker() -> AsyncIterator[Checker]:
    one = Checker(default_registry(entry_points=False), workers=1, budget_s=30.0)
    try:
        yield one
    finally:
        one.close()


async def test_checker_runs_in_a_session_of_its_own_at_a_lower_priority(checker: Checker) -> None:
    """A check runs in another process, which leads a session of its own (Linux shares CPU out
    between sessions first) at nice +10, so the API, the worker and Temporal come first."""
    pid = await checker.run(os.getpid)
    assert pid != os.getpid()
    assert os.getsid(pid) == pid
    assert os.getpriority(os.PRIO_PROCESS, pid) == CHECKER_NICENESS
    assert await checker.run(check_definition, SMALL, frozenset()) == (True, [])


async def test_check_past_its_cpu_budget_is_stopped_and_the_checker_goes_on() -> None:
    """A check that uses more CPU than its budget is stopped mid-parse with OverBudget (a C
    parser could not be stopped: the reader works event by event); the next check runs."""
    tight = Checker(default_registry(entry_points=False), workers=1, budget_s=0.05)
    try:
        await tight.warm()
        with pytest.raises(OverBudget):
            await tight.run(read_definition, False, HEAVY_YAML, frozenset())
        assert await tight.run(check_definition, SMALL, frozenset()) == (True, [])
    finally:
        tight.close()


PARENT = textwrap.dedent(
    """
    import asyncio, os
    from activities import default_registry
    from api.checker import Checker

    async def main():
        checker = Checker(default_registry(entry_points=False), workers=2, budget_s=5.0)
        await checker.warm()
        pids = {await checker.run(os.getpid) for _ in range(8)}
        print(" ".join(map(str, sorted(pids))), flush=True)
        await asyncio.sleep(600)

    if __name__ == "__main__":
        asyncio.run(main())
    """
)


async def test_checkers_end_with_the_api_process(tmp_path: Path) -> None:
    """Killed outright, the API leaves no checker behind: they leave its session, so the
    kernel ends them when their parent dies (a pool's workers otherwise wait forever)."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(parent.stdout.readline(), 60)
        pids = [int(p) for p in line.split()]
        assert pids and all(psutil.pid_exists(p) for p in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        await parent.wait()

    def gone() -> bool:
        return not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
            for p in pids
        )

    await util.eventually(gone, what="checkers ended with their parent")


class Built(BaseModel):
    """A stand-in whose input model is made at run time."""


async def _made(inp: Any, ctx: Any) -> Built:
    return Built()


def registry_of_built_tool() -> ToolRegistry:
    made = create_model("Made", value=(int, 0))
    tools = default_registry(entry_points=False)
    tools.add(Tool("test.made", "1", "made at run time", made, Built, _made, risk="low"))
    return tools


async def test_registry_that_cannot_travel_is_checked_in_the_api_threads() -> None:
    """A tool whose model is made at run time cannot be copied to a checker: the checks run in
    the API's validation threads instead, against the API's own registry."""
    tools = registry_of_built_tool()
    pool = ParsePool(Checker(tools, workers=1, budget_s=5.0), threads=1, per_key=1)
    try:
        assert not pool.checker.usable
        made = {"name": "m", "steps": [{"id": "a", "tool": "test.made"}]}
        assert await pool.check(check_definition, made, frozenset()) == (True, [])
        unknown = {"name": "m", "steps": [{"id": "a", "tool": "test.unknown"}]}
        valid, errors = await pool.check(check_definition, unknown, frozenset())
        assert not valid and errors[0][0] == "steps[0].tool"
    finally:
        pool.close()
