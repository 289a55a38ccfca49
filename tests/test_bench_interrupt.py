"""`make bench` interrupted: the first Ctrl-C or SIGTERM stops every process the bench started
and it exits; a second signal while it is stopping them does not cut that short."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT
from tests.support.procs import Processes

# From the signal to the bench's exit: each child gets SIGTERM and at most STOP_GRACE_S.
EXIT_S = 60.0
# The bench prints this once its dev server, worker and API are up and it measures.
RUNNING = "[bench] file: parked"
STARTED_S = 180.0


@pytest.mark.server  # runs `python -m bench`: scripts/dev-server, `bench.worker`, `python -m api`
@pytest.mark.parametrize(
    ("first", "second"), [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM)]
)
def test_an_interrupted_bench_stops_everything_it_started_and_exits(
    tmp_path: Path, first: signal.Signals, second: signal.Signals
) -> None:
    """Signalled once it runs, and again while it stops, the bench exits within EXIT_S with
    128 + the first signal's number, and no process it started is left."""
    env = {**os.environ, "BENCH_SCALE": "quick", "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    with Processes(tmp_path) as procs:
        bench = procs.spawn("bench", [sys.executable, "-m", "bench"], env, ROOT)
        deadline = time.monotonic() + STARTED_S
        while RUNNING not in bench.log.read_text(errors="replace"):
            assert bench.alive(), bench.tail()
            assert time.monotonic() < deadline, f"not running within {STARTED_S} s:\n{bench.tail()}"
            time.sleep(0.2)
        started = bench.tree()[1:]
        assert {p.name() for p in started} >= {"temporal", "python"}, started
        bench.popen.send_signal(first)
        # The second signal once the stopping is under way: its first child has gone.
        stopping = time.monotonic() + EXIT_S
        gone: list[psutil.Process] = []
        while not gone:
            assert time.monotonic() < stopping, bench.tail()
            gone, _ = psutil.wait_procs(started, timeout=0.05)
        bench.popen.send_signal(second)
        assert bench.popen.wait(timeout=EXIT_S) == 128 + first, bench.tail()
        # At its exit, not a moment later: a child left to die of its parent's death is left.
        left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert left == [], [(p.pid, p.name()) for p in left]
        assert f"bench interrupted ({first.name}); its processes are stopped" in bench.tail()
