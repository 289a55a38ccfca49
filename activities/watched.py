"""A file read again when it changes (looked at no more than once a second), so an operator
edits it without a restart; a broken new version keeps what was read last and logs why. The API
keys file and the address book are read this way."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("stepgate.files")

# How often, at most, a use of the file looks at it for a change.
RELOAD_CHECK_S = 1.0

T = TypeVar("T")


def stamp(path: Path) -> tuple[int, ...] | None:
    """What tells a changed file apart: an atomic replace changes the inode, an edit mtime/size."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


class WatchedFile(Generic[T]):
    """`parse(path)` of the file, again after each change. The first read raises (a broken file
    at start stops the process, naming the setting); later ones log and keep the last good
    value. `what` names the file in logs and `kept` what it holds."""

    def __init__(
        self,
        path: Path | None,
        parse: Callable[[Path], T],
        *,
        what: str,
        kept: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._parse = parse
        self._what, self._kept = what, kept
        self._clock = clock
        self._lock = threading.Lock()
        self._value: T | None = None
        self._seen: tuple[int, ...] | None = None
        self._checked = clock()
        if path is not None:
            self._seen = stamp(path)
            self._value = parse(path)

    @property
    def configured(self) -> bool:
        return self.path is not None

    def due(self) -> bool:
        """Whether the next current() looks at the file (blocking); otherwise it only returns
        the value in memory, which an event loop may call directly."""
        return self.path is not None and self._clock() - self._checked >= RELOAD_CHECK_S

    def current(self, *, look: bool = True) -> T | None:
        """The value now (None when no file is configured). Blocking when the file is due a look
        (call it off the event loop); with `look` false, the value in memory as it is."""
        if look and self.due() and self.path is not None:
            # One thread looks at the file; the others carry on with the value they have.
            if self._lock.acquire(blocking=False):
                try:
                    self._refresh(self.path)
                finally:
                    self._lock.release()
        return self._value

    def _refresh(self, path: Path) -> None:
        self._checked = self._clock()
        seen = stamp(path)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            self._value = self._parse(path)
        except ValueError as err:
            log.error(
                f"{self._what} not reloaded; keeping the {self._kept} read before", error=str(err)
            )
            return
        log.info(f"{self._what} reloaded", path=str(path))
