"""The API's catalog, reloaded without a restart: by a watch on the folder, on SIGHUP, and by
`POST /definitions/reload`. Every path runs the same `LiveCatalog.reload`, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from activities.registry import ToolRegistry
from workflows.language import catalog_files
from workflows.language.catalog import Catalog, CatalogIssue, log_errors

log = structlog.get_logger("stepgate.catalog")

# Runs a blocking function in a worker thread (the API's Offload.run).
InThread = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class CatalogChange:
    """What one reload did: versions (`name@version`) added, changed and removed, and the errors
    the catalog now lists."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    errors: tuple[CatalogIssue, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def diff(before: Catalog, after: Catalog) -> CatalogChange:
    old = {(n, v): d for n, vs in before.versions.items() for v, d in vs.items()}
    new = {(n, v): d for n, vs in after.versions.items() for v, d in vs.items()}

    def refs(keys: set[tuple[str, int]]) -> list[str]:
        return [f"{n}@{v}" for n, v in sorted(keys)]

    return CatalogChange(
        added=refs(new.keys() - old.keys()),
        changed=refs({k for k in new.keys() & old.keys() if new[k] != old[k]}),
        removed=refs(old.keys() - new.keys()),
        errors=after.errors,
    )


class LiveCatalog:
    """Holds the current Catalog; a reload builds the next one aside and swaps it in whole, so a
    request that took `current` keeps one consistent catalog (its children's too)."""

    def __init__(self, folder: Path, tools: ToolRegistry) -> None:
        self.folder = folder
        self._tools = tools
        # One reload at a time: each builds on the one before it.
        self._lock = threading.Lock()
        self._seen: tuple[Any, ...] | None = None
        self._current = Catalog()
        self.reload("start")

    @property
    def current(self) -> Catalog:
        return self._current

    def reload(self, reason: str) -> CatalogChange:
        """Read the folder now and swap in what it holds. Blocking: call off the event loop."""
        with self._lock:
            return self._reload(catalog_files.scan(self.folder), reason)

    def poll(self) -> CatalogChange | None:
        """Reload when a file was added, removed or changed since the last reload; None when
        nothing changed or a reload is already under way. Blocking."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            found = catalog_files.scan(self.folder)
            if found.fingerprint == self._seen:
                return None
            return self._reload(found, "files changed")
        finally:
            self._lock.release()

    def _reload(self, found: catalog_files.Scan, reason: str) -> CatalogChange:
        # Seen before loading: a load that fails is tried again on the next change, not every poll.
        self._seen = found.fingerprint
        before = self._current
        after = Catalog.load(self.folder, self._tools, before, found)
        self._current = after  # one reference: readers see the old catalog or the new one
        change = diff(before, after)
        log_errors(after.errors, before.errors)
        if not change.empty or reason != "files changed":
            log.info(
                "catalog loaded",
                reason=reason,
                folder=str(self.folder),
                added=change.added,
                changed=change.changed,
                removed=change.removed,
                errors=len(after.errors),
            )
        return change


class CatalogWatch:
    """The API's background reloads: a poll of the folder every `interval_s` seconds (0: none),
    and, when installed, SIGHUP. Started and stopped by the app's lifespan."""

    def __init__(self, live: LiveCatalog, in_thread: InThread, interval_s: float) -> None:
        self._live = live
        self._in_thread = in_thread
        self._interval = interval_s or None
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._signal = False

    def start(self, *, sighup: bool) -> None:
        if sighup:
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._kick.set)
                self._signal = True
            except (NotImplementedError, RuntimeError, ValueError) as err:
                # Not the main thread, or a platform without SIGHUP: the other paths still work.
                log.warning("catalog reload on SIGHUP not available", error=str(err))
        if self._interval is not None or self._signal:
            self._task = asyncio.create_task(self._run(), name="catalog-watch")

    async def stop(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), self._interval)
                asked = True
            except TimeoutError:
                asked = False
            self._kick.clear()
            try:
                if asked:
                    await self._in_thread(self._live.reload, "SIGHUP")
                else:
                    await self._in_thread(self._live.poll)
            except Exception:
                # A bug in one reload must not end the watch: the catalog stays as it was and
                # the next change or signal tries again.
                log.exception("catalog reload failed; keeping the catalog as it was")
