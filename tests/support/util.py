"""Waiting on conditions with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    ok: Callable[[T], object] = bool,
    within: float = 20.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Call `probe` until `ok(result)` holds (by default: the result is truthy) and return the
    result; fail with the last value after `within` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        value = probe()
        last = await value if inspect.isawaitable(value) else value
        if ok(last):
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {what} (last: {last!r})")
        await asyncio.sleep(interval)
