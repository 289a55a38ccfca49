"""A fork bomb through shell.run, on a real worker: the step fails, the worker carries on."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities import default_registry
from activities.config import Settings
from activities.runtime import ToolActivities
from tests.shell.helpers import PY, processes_with, shell_settings
from tests.support.util import eventually
from tests.tools.beside import BeatInput, BesideInput, RunBeside, beat
from tests.tools.conftest import make_call

# Forks for ever; every child leaves the process group at once, the way a bomb would try to
# outlive a kill of the group.
BOMB = """
import os
while True:
    try:
        if os.fork() == 0:
            os.setsid()
    except OSError:
        pass
"""


async def test_fork_bomb_fails_its_step_when_worker_keeps_running(
    client: Client, task_queue: str, settings: Settings, shell_root: Path, sandbox: str
) -> None:
    """The bomb is held to STEPGATE_SHELL_MAX_PROCS, its step fails on its timeout, every
    process it made is gone afterwards, and a heartbeating activity on the same worker (and a
    later shell step) are unaffected."""
    tuned = shell_settings(
        shell_root,
        sandbox,
        temporal_address=settings.temporal_address,
        stepgate_task_queue=task_queue,
        stepgate_shell_max_procs=16,
        stepgate_shell_max_cpu_s=30,
    )
    registry = default_registry(entry_points=False)
    registry.add(beat)
    acts = ToolActivities(registry, tuned)
    marker = f"bomb-{uuid.uuid4().hex}"
    bomb = make_call("shell.run", {"argv": [PY, "-c", BOMB, marker], "timeout_s": 3})
    probe = make_call("test.beat", BeatInput(beats=50, interval_s=0.1).model_dump())
    try:
        async with Worker(
            client, task_queue=task_queue, workflows=[RunBeside], activities=acts.activities()
        ):
            result = await client.execute_workflow(
                RunBeside.run,
                BesideInput(call=bomb, probe=probe, heartbeat_timeout_s=2.0),
                id=f"bomb-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            await eventually(lambda: processes_with(marker) == [], what="bomb processes to die")
            # Only the later step's output counts here: a probe of one beat, not five seconds.
            once = make_call("test.beat", BeatInput(beats=1, interval_s=0.1).model_dump())
            after = await client.execute_workflow(
                RunBeside.run,
                BesideInput(call=make_call("shell.run", {"argv": ["echo", "ok"]}), probe=once),
                id=f"after-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    finally:
        await acts.http.aclose()
    assert result.call.error_type == "ShellTimeout", result.call
    assert result.probe.output == {"beats": 50}, result.probe
    assert after.call.output is not None and after.call.output["stdout"] == "ok\n"
