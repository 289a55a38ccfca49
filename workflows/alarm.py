"""One durable timer for a run, moved only when the moment it waits for changes.

Waiting with a fresh timeout after every event would start and cancel a timer each time, which
fills history; the run's clock needs at most one timer, for its earliest deadline or reminder.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow


class Alarm:
    # Slots: a worker keeps one of these per cached run.
    __slots__ = ("_at", "_task", "rang")

    def __init__(self) -> None:
        self._at: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self.rang = False

    def set(self, at: datetime | None, summary: str | None = None) -> None:
        """Ring at `at` (None: never); keeps the running timer when `at` did not change.
        `summary`: what the timer waits for, as the Temporal Web UI shows it."""
        running = self._task is not None and not self._task.done()
        if at == self._at and (running or self.rang):
            return
        if self._task is not None and running:
            self._task.cancel()
        self._at, self._task, self.rang = at, None, False
        if at is not None:
            delay = max((at - workflow.now()).total_seconds(), 0.0)
            self._task = asyncio.create_task(self._ring(delay, summary))

    def reset(self) -> None:
        """The ring was acted on; the next `set` starts a timer even for the same moment."""
        self.rang = False
        self._at = None

    async def _ring(self, delay: float, summary: str | None) -> None:
        await workflow.sleep(delay, summary=summary)
        self.rang = True
