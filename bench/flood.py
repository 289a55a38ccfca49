"""`python -m bench.flood URL VIEWER_KEY SHAPE`: the starvation bench's attacker, a process of its
own so its work never shows in the measuring client's figures.

Until it is stopped (SIGTERM) it keeps VIEWER_LOOPS connections POSTing 1 MiB of YAML to
/definitions/validate with a viewer's key and ANONYMOUS_LOOPS connections POSTing 1 MiB of JSON
to /workflows without a key. Each loop sends its next request as soon as it has an answer, or as
soon as the server closed on it, and honours no Retry-After. Every ATTACK_REPORT_S it prints one
JSON line: the answers so far by loop kind and status ("reset" when the connection closed
before an answer could be read).

SHAPE is the viewer's body: `flat`, the issue's (a definition with one list of 520,000 ones), or
`bound`, the costliest body under the document bounds (99,900 values as 33,300 small mappings).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from urllib.parse import urlsplit

VIEWER_LOOPS = 8
ANONYMOUS_LOOPS = 16
BODY_BYTES = 1_048_576 - 64
ATTACK_REPORT_S = 1.0
READ_TIMEOUT_S = 60.0


def yaml_body(shape: str) -> bytes:
    head = "name: flood\nsteps:\n- id: a\n  tool: data.echo\n  with:\n    x:"
    if shape == "flat":
        items = (BODY_BYTES - len(head) - 4) // 2
        text = head + " [" + ",".join(["1"] * items) + "]\n"
    elif shape == "bound":
        text = head + "\n" + "".join("    - {a: 1}\n" for _ in range(33_300))
    else:
        raise SystemExit(f"unknown shape {shape!r}: flat or bound")
    return text.encode()[:BODY_BYTES]


def json_body() -> bytes:
    filler = BODY_BYTES - len('{"definition":"x","input":{"x":[]}}')
    ones = ",".join(["1"] * (filler // 2))
    return ('{"definition":"x","input":{"x":[' + ones + "]}}").encode()


def request(url: str, path: str, media: str, body: bytes, key: str | None) -> bytes:
    parts = urlsplit(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Type: {media}"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def answer(reader: asyncio.StreamReader) -> tuple[str, bool]:
    """The status of one response and whether the server closes after it."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = head.split(" ", 2)[1]
    length = 0
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    await reader.readexactly(length)
    return status, "connection: close" in head


async def loop(host: str, port: int, kind: str, message: bytes, counts: Counter[str]) -> None:
    while True:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, port)
            while True:
                # Read while sending: the API may answer (and close) before the body is read.
                reply = asyncio.ensure_future(answer(reader))
                writer.write(message)
                try:
                    await writer.drain()
                except ConnectionError:
                    pass
                status, closing = await asyncio.wait_for(reply, READ_TIMEOUT_S)
                counts[f"{kind} {status}"] += 1
                if closing:
                    break
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            counts[f"{kind} reset"] += 1
        finally:
            if writer is not None:
                writer.close()


async def main(url: str, key: str, shape: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counts: Counter[str] = Counter()
    viewer = request(url, "/definitions/validate", "application/yaml", yaml_body(shape), key)
    anonymous = request(url, "/workflows", "application/json", json_body(), None)
    tasks = [
        asyncio.create_task(loop(host, port, "viewer", viewer, counts)) for _ in range(VIEWER_LOOPS)
    ]
    tasks += [
        asyncio.create_task(loop(host, port, "anonymous", anonymous, counts))
        for _ in range(ANONYMOUS_LOOPS)
    ]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), ATTACK_REPORT_S)
        except TimeoutError:
            pass
        print(json.dumps(dict(counts)), flush=True)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
