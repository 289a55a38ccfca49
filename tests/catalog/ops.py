"""The ops catalog's outside world on loopback: an ops service (agents, repositories, jobs,
metrics) with the endpoints definitions/ops/ calls, a scripted OpenAI-compatible model, and the
API with a worker, to run the ops pipelines end to end and decide their gates over HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.api.helpers import eventually, wait_state
from tests.conftest import ROOT
from tests.support.api import serve_app
from tests.tools.chat import ScriptedAgent
from tests.tools.server import LocalServer, Reply, Seen, json_reply
from worker import build_worker

PEOPLE = {
    "root": ("key-root-0123456789", ["admin"]),
    "olga": ("key-olga-0123456789", ["operator"]),
    "vic": ("key-vic-0123456789", ["viewer"]),
    "otto": ("key-otto-0123456789", ["ops", "viewer"]),
    "rita": ("key-rita-0123456789", ["reviewers", "viewer"]),
}
COMMIT = "3f2a9c1d7be04e51"


def agent(hostname: str, status: str = "online", **extra: Any) -> dict[str, Any]:
    return {"hostname": hostname, "status": status, "labels": [], "load": 0.5, **extra}


class OpsService:
    """The ops service: agents by hostname, repositories' refs, deployment jobs that move
    through scripted states (one state per read), metrics; every request is recorded."""

    def __init__(self) -> None:
        self.server = LocalServer()
        self.lock = threading.Lock()
        self.agents: dict[str, dict[str, Any]] = {}
        self.refs = {("acme/shop", "v1.4.2"): COMMIT}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_states: dict[str, list[str]] = {}
        self.by_key: dict[str, str] = {}
        self.unreachable: set[str] = set()
        self.metrics = {"error_rate": 0.01, "queue_depth": 3, "cpu": 0.4}
        # States a new job goes through, one per read; a retried job goes through `retried`.
        self.next_states = ["running", "succeeded"]
        self.retried = ["running", "succeeded"]
        # The chat model: the agent picker's replies in turn; the troubleshooting agent's turns.
        self.picks: list[dict[str, Any]] = []
        self.pick_prompts: list[str] = []
        self.agent_model = ScriptedAgent("{}")
        # Requests that wait for each other (health_check's three reads prove they overlap).
        self.barrier: threading.Barrier | None = None
        s = self.server
        s.route("GET", "/agents", self._agents)
        s.route("POST", "/agents", self._register)
        s.route("POST", "/connectivity-checks", self._probe)
        s.route("GET", "/repositories/resolve", self._resolve)
        s.route("POST", "/jobs", self._create_job)
        s.route("GET", "/jobs", self._list_jobs)
        s.route("GET", "/metrics", self._metrics)
        s.route("POST", "/v1/chat/completions", self._chat)

    @property
    def url(self) -> str:
        return self.server.base_url

    # -- agents ----------------------------------------------------------------------------

    def add_agent(self, found: dict[str, Any]) -> None:
        self.agents[found["hostname"]] = found
        self._route_agent(found["hostname"])

    def _route_agent(self, host: str) -> None:
        s = self.server
        s.route("GET", f"/agents/{host}", lambda seen: self._agent(host))
        s.route("DELETE", f"/agents/{host}", lambda seen: self._unregister(host))
        s.route("PUT", f"/agents/{host}/config", lambda seen: self._configure(host, seen))
        s.route("POST", f"/agents/{host}/restart", lambda seen: json_reply({"restarting": host}))

    def _agents(self, seen: Seen) -> Reply:
        self._wait_for_others()
        found = list(self.agents.values())
        if seen.query.get("healthy") == ["true"]:
            found = [a for a in found if a["status"] == "online"]
        if "hostname" in seen.query:
            found = [a for a in found if a["hostname"] == seen.query["hostname"][0]]
        return json_reply({"agents": found})

    def _agent(self, host: str) -> Reply:
        if host not in self.agents:
            return json_reply({"error": f"no agent {host}"}, 404)
        return json_reply(self.agents[host])

    def _register(self, seen: Seen) -> Reply:
        body = seen.json()
        with self.lock:
            if body["hostname"] in self.agents:
                return json_reply({"error": "already registered"}, 409)
            self.add_agent({**agent(body["hostname"], "pending"), **body})
        return json_reply(self.agents[body["hostname"]], 201)

    def _unregister(self, host: str) -> Reply:
        self.agents.pop(host, None)
        return Reply(204)

    def _configure(self, host: str, seen: Seen) -> Reply:
        self.agents[host].update(seen.json(), status="online")
        return json_reply(self.agents[host])

    def _probe(self, seen: Seen) -> Reply:
        body = seen.json()
        reachable = body["hostname"] not in self.unreachable
        return json_reply({**body, "reachable": reachable, "latency_ms": 4 if reachable else None})

    # -- repositories and jobs ---------------------------------------------------------------

    def _resolve(self, seen: Seen) -> Reply:
        key = (seen.query.get("repository", [""])[0], seen.query.get("ref", [""])[0])
        if key not in self.refs:
            return json_reply({"error": f"unknown ref {key[1]!r} of {key[0]!r}"}, 404)
        return json_reply({"repository": key[0], "ref": key[1], "commit": self.refs[key]})

    def _create_job(self, seen: Seen) -> Reply:
        key = seen.headers.get("idempotency-key", "")
        with self.lock:
            if key and key in self.by_key:
                return json_reply(self.jobs[self.by_key[key]], 200)
            job_id = f"job-{len(self.jobs) + 1}"
            self.by_key[key] = job_id
            self.add_job(job_id, {**seen.json(), "status": "queued"}, self.next_states)
        return json_reply(self.jobs[job_id], 201)

    def add_job(self, job_id: str, job: dict[str, Any], states: list[str]) -> None:
        self.jobs[job_id] = {"id": job_id, **job}
        self.job_states[job_id] = list(states)
        s = self.server
        s.route("GET", f"/jobs/{job_id}", lambda seen: self._job(job_id))
        s.route("GET", f"/jobs/{job_id}/logs", lambda seen: self._logs(job_id))
        s.route("POST", f"/jobs/{job_id}/retry", lambda seen: self._retry(job_id))
        s.route("POST", f"/jobs/{job_id}/rollback", lambda seen: self._rollback(job_id))

    def _job(self, job_id: str) -> Reply:
        with self.lock:
            states = self.job_states[job_id]
            if states:
                self.jobs[job_id]["status"] = states.pop(0)
        return json_reply(self.jobs[job_id])

    def _logs(self, job_id: str) -> Reply:
        return json_reply({"job": job_id, "lines": self.jobs[job_id].get("logs", [])})

    def _retry(self, job_id: str) -> Reply:
        with self.lock:
            self.jobs[job_id]["status"] = "queued"
            self.job_states[job_id] = list(self.retried)
        return json_reply(self.jobs[job_id], 202)

    def _rollback(self, job_id: str) -> Reply:
        self.jobs[job_id]["rolled_back"] = True
        return json_reply({"job": job_id, "rolled_back": True}, 202)

    def _list_jobs(self, seen: Seen) -> Reply:
        self._wait_for_others()
        wanted = seen.query.get("status", [None])[0]
        found = [j for j in self.jobs.values() if wanted is None or j["status"] == wanted]
        return json_reply({"jobs": found})

    def _metrics(self, seen: Seen) -> Reply:
        self._wait_for_others()
        return json_reply(self.metrics)

    def _wait_for_others(self) -> None:
        if self.barrier is not None:
            self.barrier.wait()

    # -- the model ---------------------------------------------------------------------------

    def _chat(self, seen: Seen) -> Reply:
        body = seen.json()
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        if not system.startswith("You choose the agent"):
            return self.agent_model(seen)
        self.pick_prompts.append(user)
        pick = self.picks[min(len(self.pick_prompts), len(self.picks)) - 1]
        message = {"role": "assistant", "content": json.dumps(pick)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return json_reply({"model": body["model"], "choices": [choice], "usage": {}})

    # -- what tests read ---------------------------------------------------------------------

    def requests(self, method: str, prefix: str = "/") -> list[Seen]:
        return [
            s
            for s in self.server.seen
            if s.method == method and s.path.startswith(prefix) and not s.path.startswith("/v1/")
        ]


@contextlib.contextmanager
def ops_service() -> Iterator[OpsService]:
    found = OpsService()
    found.server.start()
    try:
        yield found
    finally:
        if found.barrier is not None:
            found.barrier.abort()
        found.server.stop()


Status = dict[str, Any]


class Api:
    """The API over HTTP as the principals of PEOPLE."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @staticmethod
    def as_(who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {PEOPLE[who][0]}"}

    async def start(self, definition: str, inp: dict[str, Any], who: str = "olga") -> str:
        r = await self.start_request(definition, inp, who)
        assert r.status_code == 201, r.text
        workflow_id: str = r.json()["workflow_id"]
        return workflow_id

    async def start_request(
        self, definition: str, inp: dict[str, Any], who: str = "olga"
    ) -> httpx.Response:
        body = {"definition": definition, "input": inp, "workflow_id": f"{definition}-{uuid4()}"}
        return await self.http.post("/workflows", json=body, headers=self.as_(who))

    async def status(self, workflow_id: str) -> Status:
        found: Status = (
            await self.http.get(f"/workflows/{workflow_id}", headers=self.as_("vic"))
        ).json()
        return found

    async def gate(self, workflow_id: str, gate: str) -> Status:
        """The open gate `gate`, once it is open."""

        def opened(status: Status) -> bool:
            if status.get("state") in ("completed", "failed", "cancelled"):
                raise AssertionError(f"{workflow_id} closed before {gate} opened: {status}")
            return any(g["gate"] == gate for g in status.get("open_gates") or [])

        status = await eventually(
            lambda: self.status(workflow_id), opened, f"{workflow_id}: gate {gate} open"
        )
        found: Status = next(g for g in status["open_gates"] if g["gate"] == gate)
        return found

    async def decide(
        self, workflow_id: str, gate: Status, action: str, who: str = "otto", **extra: Any
    ) -> httpx.Response:
        body = {"action": action, "digest": gate["digest"], "comment": f"{who}: {action}", **extra}
        return await self.http.post(
            f"/workflows/{workflow_id}/gates/{gate['gate']}", json=body, headers=self.as_(who)
        )

    async def ends(self, workflow_id: str, state: str) -> Status:
        found: Status = await wait_state(self.http, workflow_id, state, self.as_("vic"))
        return found


def uuid4() -> str:
    return uuid.uuid4().hex[:8]


def step(status: Status, step_id: str) -> Status:
    found: Status = next(s for s in status["steps"] if s["id"] == step_id)
    return found


def write_keys(folder: Path) -> Path:
    path = folder / "keys.yaml"
    path.write_text(
        yaml.safe_dump([{"key": k, "principal": p, "roles": r} for p, (k, r) in PEOPLE.items()])
    )
    return path


def catalog_settings(settings: Settings, folder: Path, ops: OpsService, llm: bool) -> Settings:
    """The test's settings with the shipped catalog, PEOPLE's keys and (with `llm`) the model."""
    update: dict[str, Any] = {
        "stepgate_api_keys_file": write_keys(folder),
        "stepgate_definitions_dir": ROOT / "definitions",
    }
    if llm:
        update["stepgate_llm_base_url"] = ops.server.url("/v1/")
        update["stepgate_llm_model"] = "scripted-1"
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def ops_api(
    client: Client,
    settings: Settings,
    folder: Path,
    ops: OpsService,
    llm: bool = True,
) -> AsyncIterator[Api]:
    """A worker and the API for the shipped catalog, both with the model unless `llm` is off."""
    api_settings = catalog_settings(settings, folder, ops, llm)
    registry = default_registry(entry_points=False)
    async with (
        build_worker(client, api_settings, registry),
        serve_app(api_settings, registry) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield Api(http)
