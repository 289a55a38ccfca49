"""What runs first in a document checker process (api.checker): its priority, its CPU budget
and the tool registry its checks read. Only the standard library is imported at the top, so the
process lowers its priority before it imports anything heavy."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")
CHECKER_NICENESS = 10
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>

# The tool registry of this process (an activities.registry.ToolRegistry), set by `start`.
registry: Any = None


class OverBudget(Exception):
    """A check used more CPU than its budget and was stopped."""


def _over_budget(signum: int, frame: FrameType | None) -> None:
    raise OverBudget


def lower_priority() -> None:
    """Nice +10 for this process alone. Linux with autogroups (the default on most
    distributions) shares CPU out between sessions first and applies nice only within one, so
    the checker leaves the API's session for one of its own and lowers that group too. Best
    effort: where a step is not possible the checker runs as is."""
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError):
        os.nice(CHECKER_NICENESS)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(CHECKER_NICENESS))
    if sys.platform == "linux":
        # Out of the API's session, the checker must still end with it.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start(tools: bytes) -> None:
    """The process pool's initializer: priority first, then the registry (its tools' modules
    are imported as it is read) and the checks themselves."""
    global registry
    lower_priority()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the API's to handle
    signal.signal(signal.SIGPROF, _over_budget)
    registry = pickle.loads(tools)
    import api.checks  # noqa: F401  # loaded now rather than in the first check


def budgeted(budget_s: float, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, stopped with OverBudget once this process has spent `budget_s` of CPU on
    it (ITIMER_PROF counts CPU time; the signal is handled between two Python instructions)."""
    signal.setitimer(signal.ITIMER_PROF, budget_s)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def ready() -> bool:
    """A task that does nothing: submitted to start the processes before they are needed."""
    return True
