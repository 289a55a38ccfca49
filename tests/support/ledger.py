"""A loopback service that applies a side effect once per Idempotency-Key, as a well-behaved
payment API does. Drills and durability tests point pipelines at it.

Exactly-once holds if and only if every retry of a call carries the same key: a key that
changed between attempts would show up as an extra, unexpected entry.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Ledger:
    delay_s: float = 0.0  # each call takes up to this long, so a worker can die mid-call
    applied: list[str] = field(default_factory=list)  # keys, in the order they took effect
    requests_by_key: dict[str, int] = field(default_factory=dict)
    # Cleared: the first request of each key waits here until set (at most 30 s), so a test can
    # kill the caller while the call is in flight; the effect still lands afterwards.
    hold: threading.Event = field(default_factory=threading.Event)
    # Set whenever a request arrives.
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.hold.set()

    @property
    def requests(self) -> int:
        return sum(self.requests_by_key.values())

    def apply(self, key: str) -> dict[str, Any]:
        with self.lock:
            self.requests_by_key[key] = self.requests_by_key.get(key, 0) + 1
            first = self.requests_by_key[key] == 1
        self.arrived.set()
        if first:
            self.hold.wait(timeout=30)
        if self.delay_s:
            time.sleep(random.uniform(0, self.delay_s))
        with self.lock:
            if key not in self.applied:
                self.applied.append(key)
            return {"key": key, "n": self.applied.index(key) + 1}

    def check(self, expected: set[str]) -> dict[str, int]:
        return {
            "side_effects": len(self.applied),
            "requests": self.requests,
            "calls_retried": sum(n > 1 for n in self.requests_by_key.values()),
            "unexpected_side_effects": len(set(self.applied) - expected),
            "missing_side_effects": len(expected - set(self.applied)),
        }


@contextmanager
def serve_ledger(ledger: Ledger, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `ledger` on a free loopback port; yields the URL to POST to."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get("Idempotency-Key", "")
            body = json.dumps(ledger.apply(key)).encode()
            self.send_response(200 if key else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller died after the effect landed: exactly the case under test

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/ledger"
    finally:
        ledger.hold.set()
        server.shutdown()
        server.server_close()
