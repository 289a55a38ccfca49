"""The shipped examples in definitions/examples/, each run end to end through the API: real
tools against services on loopback (a job service, an ops API, a scripted OpenAI-compatible
model), gates decided by people with the roles the examples name."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client

from activities.config import Settings
from activities.registry import ToolRegistry
from tests.api.conftest import KEYS, Serve
from tests.api.helpers import eventually, wait_state
from tests.tools.chat import ScriptedAgent
from tests.tools.server import LocalServer, Reply, Seen, json_reply
from worker import build_worker

Auth = Callable[[str], dict[str, str]]

PEOPLE = {
    **KEYS,
    "otto": ("key-otto-0123456789", ["ops", "viewer"]),
    "rita": ("key-rita-0123456789", ["reviewers", "viewer"]),
}


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "keys.yaml"
    path.write_text(
        yaml.safe_dump([{"key": k, "principal": p, "roles": r} for p, (k, r) in PEOPLE.items()])
    )
    return {p: k for p, (k, _) in PEOPLE.items()}


class Services:
    """A job service, an ops API and a chat model on one loopback server, scripted per test."""

    def __init__(self) -> None:
        self.server = LocalServer()
        self.job_states: list[dict[str, Any]] = []
        self.polls = 0
        self.developer: list[str] = []
        self.tester: list[dict[str, Any]] = []
        self.plan: dict[str, Any] = {}
        self.prompts: dict[str, list[str]] = {"developer": [], "tester": [], "planner": []}
        self.server.route("POST", "/jobs", lambda seen: json_reply({"id": "job-7"}, 202))
        self.server.route("GET", "/jobs/job-7", self._job)
        self.server.route("POST", "/v1/chat/completions", self._chat)
        for name in ("api", "web", "db"):
            self.server.route(
                "POST", f"/services/{name}/restart", lambda seen: json_reply({"ok": True}, 202)
            )
        self.server.route(
            "GET",
            "/services/api/metrics",
            lambda seen: json_reply({"p99_ms": 4200, "cpu": 0.99, "since": "09:12"}),
        )
        self.server.route(
            "GET",
            "/services/api/logs",
            lambda seen: json_reply({"lines": ["09:12 worker pool exhausted", "09:13 stuck"]}),
        )
        # The triage agent's model, turn by turn (tests set its replies).
        self.agent = ScriptedAgent("{}")

    def _job(self, seen: Seen) -> Reply:
        state = self.job_states[min(self.polls, len(self.job_states) - 1)]
        self.polls += 1
        return json_reply(state)

    def _chat(self, seen: Seen) -> Reply:
        body = seen.json()
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        if system.startswith("You are the on-call assistant"):
            return self.agent(seen)
        if system.startswith("You are a developer"):
            self.prompts["developer"].append(user)
            reply: Any = {"code": self.developer[len(self.prompts["developer"]) - 1]}
        elif system.startswith("You are a tester"):
            self.prompts["tester"].append(user)
            reply = self.tester[len(self.prompts["tester"]) - 1]
        else:
            self.prompts["planner"].append(user)
            reply = self.plan
        message = {"role": "assistant", "content": json.dumps(reply)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return json_reply({"model": body["model"], "choices": [choice], "usage": {}})

    def posts(self, prefix: str) -> list[str]:
        return [
            s.path for s in self.server.seen if s.method == "POST" and s.path.startswith(prefix)
        ]


@pytest.fixture
def services() -> Iterator[Services]:
    found = Services()
    found.server.start()
    yield found
    found.server.stop()


@pytest.fixture
async def api(
    client: Client, api_settings: Settings, registry: ToolRegistry, serve: Serve, services: Services
) -> AsyncIterator[httpx.AsyncClient]:
    settings = api_settings.model_copy(
        update={
            "stepgate_llm_base_url": services.server.url("/v1/"),
            "stepgate_llm_model": "scripted-1",
        }
    )
    async with build_worker(client, settings, registry), serve(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield http


async def run(http: httpx.AsyncClient, as_: Auth, definition: str, inp: dict[str, Any]) -> str:
    r = await http.post(
        "/workflows",
        json={
            "definition": definition,
            "input": inp,
            "workflow_id": f"ex-{definition}-{uuid.uuid4().hex[:8]}",
        },
        headers=as_("olga"),
    )
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow_id"]
    return workflow_id


async def open_gates(http: httpx.AsyncClient, as_: Auth, workflow_id: str, count: int) -> Any:
    async def probe() -> Any:
        return (await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))).json()

    return await eventually(
        probe, lambda s: len(s.get("open_gates") or []) >= count, f"{count} gates open"
    )


async def decide(
    http: httpx.AsyncClient,
    as_: Auth,
    who: str,
    workflow_id: str,
    gate: dict[str, Any],
    action: str,
) -> None:
    r = await http.post(
        f"/workflows/{workflow_id}/gates/{gate['gate']}",
        json={"action": action, "digest": gate["digest"], "comment": f"{who}: {action}"},
        headers=as_(who),
    )
    assert r.status_code == 200, r.text


def step(status: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in status["steps"] if s["id"] == step_id)
    return found


async def test_poll_until_done_polls_a_running_job_until_it_is_done(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """A 200 saying "running" is polled again after a durable wait; the run completes with the
    job's result once the service says done, and each poll is an iteration in status."""
    services.job_states = [
        {"status": "running"},
        {"status": "running"},
        {"status": "done", "result": {"artifact": "build-42.tar"}},
    ]
    workflow_id = await run(
        api, as_, "poll_until_done", {"jobs_url": services.server.url(""), "payload": {"x": 1}}
    )
    done = await wait_state(api, workflow_id, "completed", as_("vic"))
    assert done["output"] == {"job": "job-7", "result": {"artifact": "build-42.tar"}}
    assert len(step(done, "wait")["iterations"]) == 3 and services.polls == 3
    submitted = next(s for s in services.server.seen if s.path == "/jobs")
    assert submitted.json() == {"x": 1}


async def test_poll_until_done_fails_the_run_when_the_job_ends_badly(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """A job that stops in any state but done fails the run with the example's own message."""
    services.job_states = [{"status": "running"}, {"status": "error"}]
    workflow_id = await run(api, as_, "poll_until_done", {"jobs_url": services.server.url("")})
    failed = await wait_state(api, workflow_id, "failed", as_("vic"))
    assert "the job did not finish as done" in failed["error"]
    assert services.polls == 2


async def test_rolling_restart_asks_for_one_approval_per_service(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """Each service has its own gate (`restart.<index>`, urgent in production, its own review
    text), decided by the ops role; a rejected service is not restarted and the others are."""
    workflow_id = await run(
        api,
        as_,
        "rolling_restart",
        {
            "ops_url": services.server.url(""),
            "services": ["api", "web", "db"],
            "environment": "production",
        },
    )
    status = await open_gates(api, as_, workflow_id, 2)
    by_id = {g["gate"]: g for g in status["open_gates"]}
    assert set(by_id) <= {"restart.0", "restart.1", "restart.2"}
    first = by_id["restart.0"]
    assert first["priority"] == "urgent" and first["approvers"] == ["role:ops"]
    assert first["review"] == "Restart api (0) in production?"
    refused = await api.post(
        f"/workflows/{workflow_id}/gates/restart.0",
        json={"action": "approve", "digest": first["digest"]},
        headers=as_("rita"),
    )
    assert refused.status_code == 403, refused.text

    decided: set[str] = set()
    while len(decided) < 3:
        status = await open_gates(api, as_, workflow_id, 1)
        for gate in status["open_gates"]:
            if gate["gate"] not in decided:
                action = "reject" if gate["gate"] == "restart.1" else "approve"
                await decide(api, as_, "otto", workflow_id, gate, action)
                decided.add(gate["gate"])
    done = await wait_state(api, workflow_id, "completed", as_("vic"))
    assert sorted(services.posts("/services/")) == [
        "/services/api/restart",
        "/services/db/restart",
    ]
    items = step(done, "restart")["items"]
    assert [i["state"] for i in items][0::2] == ["succeeded", "succeeded"]
    assert items[1]["state"] != "succeeded"
    assert services.server.seen[-1].json() == {"environment": "production"}


async def test_rolling_restart_refuses_a_service_name_that_is_not_a_name(
    api: httpx.AsyncClient, as_: Auth
) -> None:
    """Run input is checked against the example's schema: a path in a service name is a 422
    naming the field, before anything runs."""
    r = await api.post(
        "/workflows",
        json={
            "definition": "rolling_restart",
            "input": {"ops_url": "http://127.0.0.1:9", "services": ["../admin"]},
        },
        headers=as_("olga"),
    )
    assert r.status_code == 422, r.text
    assert "services" in r.text


async def test_rework_loop_feeds_findings_back_until_the_tester_passes(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """Round one fails review, round two gets the findings and passes; a reviewer approves the
    release of exactly the passed code."""
    services.developer = ["def add(a, b): return a - b", "def add(a, b): return a + b"]
    services.tester = [
        {"passed": False, "findings": "add() subtracts"},
        {"passed": True, "findings": ""},
    ]
    workflow_id = await run(api, as_, "rework_loop", {"task": "write add()"})
    status = await open_gates(api, as_, workflow_id, 1)
    gate = status["open_gates"][0]
    assert gate["gate"] == "release" and gate["approvers"] == ["role:reviewers"]
    assert [i["until"] for i in step(status, "rounds")["iterations"]] == [False, True]
    assert "add() subtracts" in services.prompts["developer"][1]
    assert "add() subtracts" not in services.prompts["developer"][0]
    await decide(api, as_, "rita", workflow_id, gate, "approve")
    done = await wait_state(api, workflow_id, "completed", as_("vic"))
    assert done["output"] == {"code": "def add(a, b): return a + b"}


async def test_rework_loop_fails_when_no_round_passes(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """Five failed rounds end the loop and fail the run, saying so; no gate opens."""
    services.developer = ["x = 1"] * 5
    services.tester = [{"passed": False, "findings": "still wrong"}] * 5
    workflow_id = await run(api, as_, "rework_loop", {"task": "write add()"})
    failed = await wait_state(api, workflow_id, "failed", as_("vic"))
    assert "repeat.until did not hold within 5 iterations" in failed["error"]
    assert len(services.prompts["tester"]) == 5 and not failed["open_gates"]


PLAN = {
    "name": "greet",
    "input": {"type": "object", "properties": {"context": {"type": "object"}}},
    "steps": [
        {
            "id": "shape",
            "tool": "data.transform",
            "with": {"data": "${input.context}", "expression": "who"},
        },
        {
            "id": "say",
            "needs": ["shape"],
            "tool": "data.echo",
            "with": {"value": "hello ${steps.shape.output.result}"},
        },
    ],
    "output": "${steps.say.output.value}",
}


async def test_plan_then_execute_runs_the_approved_plan(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """The planner's definition is shown at the gate exactly (bound by digest) and, once a
    reviewer approves it, runs as a child with the run's context."""
    services.plan = PLAN
    workflow_id = await run(
        api, as_, "plan_then_execute", {"goal": "greet the team", "context": {"who": "team"}}
    )
    status = await open_gates(api, as_, workflow_id, 1)
    gate = status["open_gates"][0]
    assert (gate["gate"], gate["priority"]) == ("execute", "high")
    assert [s["id"] for s in gate["subject"]["plan"]["steps"]] == ["shape", "say"]
    assert gate["subject"]["input"] == {"context": {"who": "team"}}
    assert "Goal: greet the team" in services.prompts["planner"][0]
    await decide(api, as_, "rita", workflow_id, gate, "approve")
    done = await wait_state(api, workflow_id, "completed", as_("vic"))
    assert done["output"] == "hello team"


async def test_plan_then_execute_refuses_a_plan_with_a_tool_it_may_not_use(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """A plan naming shell.run fails the step with the path of the problem; nobody is asked."""
    services.plan = {**PLAN, "steps": [{"id": "rm", "tool": "shell.run", "with": {"argv": ["rm"]}}]}
    workflow_id = await run(api, as_, "plan_then_execute", {"goal": "clean up"})
    failed = await wait_state(api, workflow_id, "failed", as_("vic"))
    execute = step(failed, "execute")
    assert "steps[0].tool: tool 'shell.run' is not allowed in this plan" in execute["error"]
    assert not failed["open_gates"]


async def test_ops_triage_agent_reads_freely_and_restarts_only_with_ops_approval(
    api: httpx.AsyncClient, as_: Auth, services: Services
) -> None:
    """The agent reads metrics and logs with no gate; its restart waits for the ops role (a
    reviewer without it is refused), is approved with a gentler mode, runs with it, and the
    model's summary (checked against the step's output_schema) is the run's output."""
    base = services.server.url("")
    services.agent.replies = [
        [
            ("http_request", {"url": f"{base}/services/api/metrics"}),
            ("http_request", {"method": "GET", "url": f"{base}/services/api/logs"}),
        ],
        [
            (
                "http_request",
                {
                    "method": "POST",
                    "url": f"{base}/services/api/restart",
                    "json": {"mode": "hard"},
                },
            )
        ],
        '{"summary": "api was stuck (worker pool exhausted); restarted gracefully", '
        '"restarted": true}',
    ]
    workflow_id = await run(api, as_, "ops_triage_agent", {"ops_url": base, "service": "api"})
    status = await open_gates(api, as_, workflow_id, 1)
    gate = status["open_gates"][0]
    assert (gate["gate"], gate["approvers"]) == ("triage.call-3", ["role:ops"])
    assert gate["subject"]["arguments"]["method"] == "POST"
    assert gate["review"] == "The triage agent wants to change api: check the call"
    assert services.posts("/services/") == []
    patch = {"arguments": {"json": {"mode": "graceful"}}}
    r = await api.post(
        f"/workflows/{workflow_id}/gates/triage.call-3",
        json={"action": "modify", "patch": patch},
        headers=as_("rita"),
    )
    assert r.status_code == 403, r.text
    r = await api.post(
        f"/workflows/{workflow_id}/gates/triage.call-3",
        json={"action": "modify", "patch": patch, "comment": "graceful first"},
        headers=as_("otto"),
    )
    assert r.status_code == 200, r.text
    done = await wait_state(api, workflow_id, "completed", as_("vic"))
    assert done["output"]["restarted"] is True
    restart = next(s for s in services.server.seen if s.path == "/services/api/restart")
    assert restart.json() == {"mode": "graceful"}
    calls = step(done, "triage")["agent"]["calls"]
    assert [(c["decision"], c["state"]) for c in calls] == [
        ("auto", "succeeded"),
        ("auto", "succeeded"),
        ("approve", "succeeded"),
    ]
    assert step(done, "triage")["agent"]["transcript_artifact"]["path"].endswith(
        "agent/triage/transcript.json"
    )
