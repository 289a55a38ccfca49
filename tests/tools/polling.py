"""Waiting for a condition with a deadline instead of a fixed sleep."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path


async def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def process_gone(pid: int) -> bool:
    """True once `pid` no longer runs. A zombie counts as gone: an orphan is only reaped when
    init gets round to it, which in some containers takes seconds."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


async def read_pids(path: Path, count: int) -> list[int]:
    """The pids a test script wrote, one per line, once all `count` are there."""
    pids: list[int] = []

    def ready() -> bool:
        # A tiny local file: reading it inline is cheaper than a thread hop.
        if path.exists():
            pids[:] = [int(p) for p in path.read_text().split()]
        return len(pids) >= count

    await wait_until(ready, f"{count} pid(s) in {path}")
    return pids
