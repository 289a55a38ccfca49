"""Pure-Python work on a bounded worker thread, stopped when it runs past its time budget.

A library handed a hostile document can go exponential (an OpenAPI validator walking a `$ref`
fan-out) or grind through a decompression bomb; a thread cannot be killed, so the work is
traced: at Python function calls the trace checks the deadline and the caller's cancellation,
and raises out of whatever is running once either has passed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from activities.tools._budget import BOUNDED_POOL, BudgetExceeded

T = TypeVar("T")

# The deadline is read once every this many calls: a clock read per call would double the cost.
_CHECK_EVERY = 64


class _Stopped(BaseException):
    """Raised from the trace; a BaseException, so a library's `except Exception` cannot keep it."""


def _run(
    fn: Callable[..., T], args: tuple[Any, ...], timeout_s: float, cancelled: threading.Event
) -> T:
    deadline = time.monotonic() + timeout_s
    calls = 0

    def trace(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        calls += 1
        if calls % _CHECK_EVERY == 0 and (time.monotonic() > deadline or cancelled.is_set()):
            raise _Stopped
        # No local trace: only calls are seen, which keeps the overhead small.

    sys.settrace(trace)
    try:
        return fn(*args)
    except _Stopped:
        if cancelled.is_set():
            raise BudgetExceeded("the step was cancelled") from None
        raise BudgetExceeded(f"it ran longer than its {timeout_s:g}s budget") from None
    finally:
        sys.settrace(None)


async def run_traced(fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """`fn(*args)` on the bounded pool; BudgetExceeded once it runs longer than `timeout_s`
    (counted from when a thread takes it) or its caller is cancelled."""
    cancelled = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(BOUNDED_POOL, _run, fn, args, timeout_s, cancelled)
    finally:
        cancelled.set()
