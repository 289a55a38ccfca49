"""Checking request documents in processes of their own: strict JSON of large bodies and whole
definitions sent to /definitions/validate (YAML or JSON); the checks are in api.checks.

Threads would share the API's interpreter lock with its event loop: a thread parsing a large
document held it for tens of milliseconds at a time (and the garbage collection of the parse's
objects for hundreds), so every decision and status read waited. A process shares nothing with
the loop, runs at a lower priority (api.checker_process: when the machine is short of CPU, the
API, the worker and Temporal come first), and is stopped mid-check: each check runs under a
budget of CPU seconds, past which it is refused as OverBudget.

The processes are spawned (a fork would copy the locks of the API's threads) on first use, or at
start with `warm`, each with a copy of the API's tool registry that holds the tools' models but
not their code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import structlog

from activities.registry import ToolRegistry
from api.checker_process import OverBudget, budgeted, ready, start

T = TypeVar("T")
log = structlog.get_logger("stepgate.api")
__all__ = ["Checker", "CheckerUnavailable", "OverBudget", "portable"]


class CheckerUnavailable(Exception):
    """The checking processes could not start or died; the message says which."""


async def _not_here(inp: Any, ctx: Any) -> Any:
    raise RuntimeError("tools never run in the document checker")


def portable(registry: ToolRegistry) -> bytes | None:
    """The registry with each tool's code left out, pickled for a checker process; None when a
    tool's models cannot travel (built at run time, not importable by name)."""
    # Neither a tool's code nor where it sends (closures, some of them) is needed to check a
    # document, and neither need travel.
    tools = [
        dataclasses.replace(t, fn=_not_here, sends_to=None)
        for name in registry.names()
        for t in registry.versions(name)
    ]
    try:
        return pickle.dumps(ToolRegistry(tools))
    except (pickle.PicklingError, AttributeError, TypeError):
        return None


class Checker:
    """Up to `workers` checker processes, each check within `budget_s` CPU seconds."""

    def __init__(self, registry: ToolRegistry, workers: int, budget_s: float) -> None:
        self.registry = registry
        self.workers = workers
        self.budget_s = budget_s
        self._pool: ProcessPoolExecutor | None = None
        self._tools = portable(registry)
        if self._tools is None:
            log.warning(
                "the tool registry cannot be copied to a document checker (a tool's models are "
                "not importable by name): documents are checked in the API's threads, without "
                "a CPU budget"
            )

    @property
    def usable(self) -> bool:
        """Whether checks can run in checker processes (else the API runs them in threads)."""
        return self._tools is not None

    def _executor(self) -> ProcessPoolExecutor:
        if self._tools is None:
            raise CheckerUnavailable("the tool registry cannot be copied to a checker")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=start,
                initargs=(self._tools,),
            )
        return self._pool

    async def warm(self) -> None:
        """Start every process now, so the first checks do not wait for them."""
        if not self.usable:
            return
        loop = asyncio.get_running_loop()
        pool = self._executor()
        await asyncio.gather(*(loop.run_in_executor(pool, ready) for _ in range(self.workers)))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a checker process within the budget; OverBudget past it."""
        loop = asyncio.get_running_loop()
        call = functools.partial(budgeted, self.budget_s, fn, *args)
        try:
            return await loop.run_in_executor(self._executor(), call)
        except BrokenProcessPool:
            # A checker died (killed, out of memory): the next check starts new ones.
            self.close()
            raise CheckerUnavailable("a document checker stopped; send the request again") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
