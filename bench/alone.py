"""`python -m bench.alone SECTION [--store file|memory]`: one section of the bench on a stack of
its own (server through scripts/dev-server, one worker, the API), at BENCH_SCALE (default full),
printed as JSON with the load average before and after. For iterating on one figure without the
whole bench: `overhead`, `status` or `throughput` (1 worker, then 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import overhead, status, throughput
from bench.scale import Scale, scale_from_env
from bench.stack import (
    STORES,
    Stack,
    Store,
    open_stack,
    start_api,
    start_worker,
    stop_worker,
)
from tests.support.procs import Processes


async def both_throughputs(stack: Stack, scale: Scale) -> dict[str, Any]:
    one = await throughput.measure(stack, scale, "1", first="pipeline")
    second = await start_worker(stack, "worker-2")
    try:
        two = await throughput.measure(stack, scale, "2", first="baseline")
    finally:
        await stop_worker(stack, second)
    return {"throughput_1": one, "throughput_2": two}


SECTIONS: dict[str, Callable[[Stack, Scale], Awaitable[dict[str, Any]]]] = {
    "overhead": overhead.measure,
    "status": status.measure,
    "throughput": both_throughputs,
}


async def run(section: str, store: Store, scale: Scale) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"stepgate-bench-{section}-"))
    (workdir / "definitions").mkdir()
    with Processes(workdir) as procs:
        stack = await open_stack(procs, workdir, store=store)
        await asyncio.gather(start_worker(stack, "worker-1"), start_api(stack))
        before = [round(x, 2) for x in os.getloadavg()]
        result = await SECTIONS[section](stack, scale)
    after = [round(x, 2) for x in os.getloadavg()]
    return (
        {"section": section, "store": store, "scale": scale.name}
        | result
        | {"load_average": {"before": before, "after": after}}
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alone")
    parser.add_argument("section", choices=sorted(SECTIONS))
    parser.add_argument("--store", choices=STORES, default=STORES[0])
    args = parser.parse_args()
    store = next(s for s in STORES if s == args.store)
    print(json.dumps(asyncio.run(run(args.section, store, scale_from_env())), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
