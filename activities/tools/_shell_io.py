"""shell.run's pipes: a bounded tail of each output stream, masked before it is cut, and stdin."""

from __future__ import annotations

import asyncio
import re
from contextlib import suppress

from activities.masking import mask_text

_CHUNK = 65_536


class Tail:
    """Keeps only the last `limit` bytes of a stream, however long the stream is."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_CHUNK):
            self.data += chunk
            if len(self.data) > self.limit:
                del self.data[: len(self.data) - self.limit]
                self.truncated = True

    def shown(self, limit: int, secrets: set[str]) -> tuple[str, bool]:
        """The last `limit` bytes as masked text, and whether anything was cut.

        The tail keeps a secret's length more than it shows: when the stream was cut, what is
        left of a secret at the cut is dropped with that margin, and whole secrets are masked
        before the text is cut to `limit`."""
        text = self.data.decode("utf-8", errors="replace")
        if self.truncated and secrets:
            text = text[_first_whole(text, secrets) :]
        text = mask_text(text, secrets)
        raw = text.encode()
        if len(raw) <= limit:
            return text, self.truncated
        return raw[-limit:].decode("utf-8", errors="replace"), True


def _first_whole(text: str, secrets: set[str]) -> int:
    """Where text after a cut may start: past any secret's tail at the cut, but never inside a
    secret that is there whole (that one is masked instead)."""
    margin = max(len(s.encode()) for s in secrets)
    head = text[: 2 * margin]
    spans = [(m.start(), m.end()) for s in secrets for m in re.finditer(re.escape(s), head)]
    start, moved = margin, True
    while moved:
        moved = False
        for begin, end in spans:
            if begin < start < end:
                start, moved = begin, True
    return start


async def feed(proc: asyncio.subprocess.Process, text: str | None) -> None:
    """Write `text` to the program's stdin and close it."""
    if text is None or proc.stdin is None:
        return
    # A program that exits without reading its input is not an error of ours.
    with suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(text.encode())
        await proc.stdin.drain()
    proc.stdin.close()
