"""Overload bounds held by one API process: a request rate, live streams and the bytes they send
per principal, and decisions in flight per run. Nothing here is shared between API replicas."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from activities.config import Settings
from api.errors import ApiError

# Decisions for one run that may wait for a turn behind those in flight; past this the run is
# busy at once rather than holding yet another connection open until the deadline.
MAX_WAITING_PER_RUN = 1_000
STREAM_RETRY_AFTER_S = 5


def too_many(message: str, retry_after_s: float) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        message,
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )


def run_busy(workflow_id: str, retry_after_s: float) -> ApiError:
    """The run takes decisions more slowly than they arrive: come back later."""
    return ApiError(
        503,
        "run_busy",
        f"run {workflow_id!r} has more decisions in flight than it can take now; try again",
        headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
    )


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class ByteBudget:
    """The bytes one principal's live streams may send: `burst` at once, then `rate` a second.
    An event goes when the budget is not overdrawn, and is paid for once sent, so what a
    principal's streams send by any moment is at most `burst + rate * seconds` plus one event."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.stamp = self.burst, self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_s(self) -> float:
        """0 when an event may go now, else the seconds until it may."""
        self._refill()
        return 0.0 if self.tokens > 0 else (1 - self.tokens) / self.rate

    def spend(self, n: int) -> None:
        self._refill()
        self.tokens -= n


@dataclass
class KeyLimits:
    """A token bucket and a count of open /events streams per principal. Principals come from
    the keys file, so both maps are bounded by the number of configured keys."""

    rate_per_s: float
    burst: int
    streams_per_key: int
    stream_bytes_per_s: float = 1024 * 1024
    stream_burst_bytes: float = 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _streams: dict[str, int] = field(default_factory=dict)
    _bytes: dict[str, ByteBudget] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyLimits:
        return cls(
            rate_per_s=settings.stepgate_rate_per_s,
            burst=settings.stepgate_rate_burst,
            streams_per_key=settings.stepgate_streams_per_key,
            stream_bytes_per_s=settings.stepgate_stream_bytes_per_s,
            stream_burst_bytes=settings.stepgate_stream_burst_bytes,
        )

    def stream_bytes(self, principal: str) -> ByteBudget:
        """The byte budget all of the principal's live streams share."""
        budget = self._bytes.get(principal)
        if budget is None:
            budget = self._bytes[principal] = ByteBudget(
                self.stream_bytes_per_s, self.stream_burst_bytes, self.clock
            )
        return budget

    def admit(self, principal: str) -> None:
        """Take one token for a request, or refuse it with 429 and when the next one is due."""
        if self.rate_per_s <= 0:
            return
        now = self.clock()
        bucket = self._buckets.setdefault(principal, _Bucket(float(self.burst), now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate_per_s)
        bucket.stamp = now
        if bucket.tokens < 1:
            wait = (1 - bucket.tokens) / self.rate_per_s
            raise too_many(
                f"more than {self.rate_per_s:g} requests per second from {principal!r}", wait
            )
        bucket.tokens -= 1

    def open_stream(self, principal: str) -> StreamLease:
        """Count a new live stream, or refuse it with 429 when the principal holds the maximum."""
        held = self._streams.get(principal, 0)
        if held >= self.streams_per_key:
            raise ApiError(
                429,
                "too_many_streams",
                f"{principal!r} already has {held} live streams open (at most "
                f"{self.streams_per_key}); close one first",
                # Streams last; a retry a few seconds later finds a slot if one was closed.
                headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
            )
        self._streams[principal] = held + 1
        return StreamLease(self, principal)

    def _close_stream(self, principal: str) -> None:
        held = self._streams.get(principal, 0) - 1
        if held > 0:
            self._streams[principal] = held
        else:
            self._streams.pop(principal, None)

    def streams(self, principal: str) -> int:
        return self._streams.get(principal, 0)


@dataclass
class StreamLease:
    """One open stream; releasing it twice counts once (the stream's end and the response's
    clean-up may both do it)."""

    limits: KeyLimits
    principal: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limits._close_stream(self.principal)


@dataclass
class _Lane:
    turns: asyncio.Semaphore
    users: int = 0


@dataclass
class RunLanes:
    """At most `per_run` decisions of this process in flight per run; the rest wait their turn
    in arrival order, up to a deadline. Temporal refuses updates above its own per-run limit
    with RESOURCE_EXHAUSTED, which its client then backs off from for a second or more: keeping
    below that limit is what lets a storm of decisions on one gate through quickly."""

    per_run: int
    max_waiting: int = MAX_WAITING_PER_RUN
    _lanes: dict[str, _Lane] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def turn(self, workflow_id: str, deadline: float) -> AsyncIterator[bool]:
        """Hold one of the run's turns, yielding whether it had to be waited for; 503 run_busy
        if none frees up before `deadline` (a loop.time() value) or too many already wait."""
        lane = self._lanes.get(workflow_id)
        if lane is None:
            lane = self._lanes[workflow_id] = _Lane(asyncio.Semaphore(self.per_run))
        if lane.users >= self.per_run + self.max_waiting:
            raise run_busy(workflow_id, 1)
        lane.users += 1
        try:
            waited = lane.turns.locked()
            try:
                async with asyncio.timeout_at(deadline):
                    await lane.turns.acquire()
            except TimeoutError:
                raise run_busy(workflow_id, 1) from None
            try:
                yield waited
            finally:
                lane.turns.release()
        finally:
            lane.users -= 1
            if lane.users == 0 and self._lanes.get(workflow_id) is lane:
                del self._lanes[workflow_id]

    def in_use(self, workflow_id: str) -> int:
        lane = self._lanes.get(workflow_id)
        return lane.users if lane else 0
