"""Plans made at run time (a `pipeline: {definition: ...}` step) under hostile input, through the
API: everything a plan can reach is bounded by its step, a gate notification's tool and a step's
task queue included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import StartRun
from tests.support.util import eventually
from tests.tools.server import LocalServer, json_reply

Auth = Callable[[str], dict[str, str]]


def runtime(queues: list[str] | None = None) -> dict[str, Any]:
    """An inline pipeline that runs the plan its input carries, allowed data.echo alone."""
    plan: dict[str, Any] = {"definition": "${input.plan}", "allowed_tools": ["data.echo"]}
    if queues is not None:
        plan["allowed_task_queues"] = queues
    return {
        "name": "runtime_plan",
        "input": {"type": "object", "properties": {"plan": {"type": "object"}}},
        "steps": [{"id": "execute", "pipeline": plan, "with": {"ticket": "T-1 db_password=s3"}}],
        "output": "${steps.execute.output}",
    }


def made(**step: Any) -> dict[str, Any]:
    """The plan: one echo of its input, with more keys on the step."""
    return {
        "name": "made",
        "input": {"type": "object", "properties": {"ticket": {"type": "string"}}},
        "steps": [
            {"id": "echo", "tool": "data.echo", "with": {"value": "${input.ticket}"}, **step}
        ],
        "output": "${steps.echo.output.value}",
    }


@pytest.fixture
def hook() -> Iterator[LocalServer]:
    server = LocalServer()
    server.route("POST", "/hook", lambda seen: json_reply({"ok": True}))
    server.start()
    yield server
    server.stop()


async def ended(http: httpx.AsyncClient, as_: Auth, workflow_id: str) -> dict[str, Any]:
    """The status once the run ended, or waits at a gate."""

    async def probe() -> dict[str, Any]:
        body: dict[str, Any] = (
            await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))
        ).json()
        return body

    return await eventually(
        probe,
        ok=lambda s: s.get("state") in ("completed", "failed", "cancelled", "waiting"),
        what=f"{workflow_id} ended or waiting",
    )


async def test_a_plans_gate_notification_outside_its_allowed_tools_fails_the_step(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, team: str, hook: LocalServer
) -> None:
    """A run-time plan allowed data.echo alone whose gate notifies a webhook of its choosing
    (with the run's input) fails its step with the notification's path; no gate opens and the
    webhook is never called."""
    notify = {"tool": "notify.webhook", "with": {"url": hook.url("/hook"), "text": "x"}}
    plan = made(approval={"approvers": [f"role:{team}"], "notify": notify})
    workflow_id = await start_run(runtime(), {"plan": plan}, who="root")
    status = await ended(http, as_, workflow_id)
    assert status["state"] == "failed", status
    step = status["steps"][0]
    assert (
        "steps[0].approval.notify.tool: tool 'notify.webhook' is not "
        "allowed in this plan (allowed: data.echo)"
    ) in step["error"]
    assert status["open_gates"] == [] and hook.seen == []


async def test_a_plans_task_queue_is_refused_unless_its_step_allows_it(
    http: httpx.AsyncClient, start_run: StartRun, as_: Auth, task_queue: str
) -> None:
    """A plan step naming another team's task queue fails the plan step at once, naming the
    step's task_queue (it used to wait for ever on that queue); a queue the plan step lists in
    allowed_task_queues is used, and the plan completes there."""
    other = made(task_queue="other-team")
    workflow_id = await start_run(runtime(), {"plan": other}, who="root")
    status = await ended(http, as_, workflow_id)
    assert status["state"] == "failed", status
    assert (
        "steps[0].task_queue: task queue 'other-team' is not allowed in this plan (allowed: none)"
    ) in status["steps"][0]["error"]

    ours = made(task_queue=task_queue)
    workflow_id = await start_run(runtime([task_queue]), {"plan": ours}, who="root")
    status = await ended(http, as_, workflow_id)
    assert (status["state"], status["output"]) == ("completed", "T-1 db_password=s3"), status
