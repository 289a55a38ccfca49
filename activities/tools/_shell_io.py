"""shell.run's pipes: a bounded tail of each output stream, masked before it is cut, and stdin."""

from __future__ import annotations

import asyncio
from contextlib import suppress

from activities.masking import mask_text, secret_pattern

_CHUNK = 65_536


def slack(secrets: set[str]) -> int:
    """What a tail keeps beyond what it shows: the longest form of a secret that masking knows
    (URL-encoded, three characters a byte)."""
    return 3 * max((len(s.encode()) for s in secrets), default=0)


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
    margin = slack(secrets)
    head = text[: 2 * margin]
    pattern = secret_pattern(frozenset(secrets))
    spans = [(m.start(), m.end()) for m in pattern.finditer(head)] if pattern else []
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
