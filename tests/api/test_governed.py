"""Governed runs end to end through the API, with a scripted OpenAI-compatible planner on
loopback and the memory in SQLite: the seed scenario of the governed cycle."""

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
from tests.support.api import serve_app
from tests.support.traces import named, parent_of, recording, traced
from tests.support.util import eventually
from tests.tools.server import LocalServer, Reply, Seen, json_reply
from worker import build_worker

PEOPLE = {
    **KEYS,
    "olga": ("key-olga-0123456789", ["operator", "elder"]),
    "opal": ("key-opal-0123456789", ["operator"]),
    "pat": ("key-pat-0123456789", ["peer"]),
    "eve": ("key-eve-0123456789", ["elder"]),
    "ezra": ("key-ezra-0123456789", ["elder"]),
}


def plan_for(prompt: str, hook: str) -> dict[str, Any]:
    """What the scripted planner proposes for a request: a read-only echo, a POST (medium risk)
    or the same echo for production (a policy rule makes it tier 3)."""
    if "announce" in prompt:
        return {
            "name": "announce",
            "input": {"type": "object", "properties": {"text": {"type": "string"}}},
            "steps": [
                {
                    "id": "post",
                    "tool": "http.request",
                    "with": {"method": "POST", "url": hook, "json": {"text": "${input.text}"}},
                }
            ],
        }
    return {
        "name": "summarize",
        "input": {"type": "object", "properties": {"text": {"type": "string"}}},
        "steps": [{"id": "echo", "tool": "data.echo", "with": {"value": "${input.text}"}}],
        "output": "${steps.echo.output.value}",
    }


class Planner:
    """An OpenAI-compatible endpoint that plans from the prompt and keeps every prompt."""

    def __init__(self, hook: str) -> None:
        self.hook = hook
        self.prompts: list[str] = []

    def __call__(self, seen: Seen) -> Reply:
        body = seen.json()
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        self.prompts.append(prompt)
        user = body["messages"][1]["content"]
        content = json.dumps(plan_for(user.split("Context")[0], self.hook))
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        return json_reply({"model": body["model"], "choices": [choice], "usage": {}})


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "keys.yaml"
    path.write_text(
        yaml.safe_dump([{"key": k, "principal": p, "roles": r} for p, (k, r) in PEOPLE.items()])
    )
    return {p: k for p, (k, _) in PEOPLE.items()}


@pytest.fixture
def llm() -> Iterator[tuple[LocalServer, Planner]]:
    server = LocalServer()
    server.route("POST", "/hook", lambda seen: json_reply({"ok": True}))
    planner = Planner(server.url("/hook"))
    server.route("POST", "/v1/chat/completions", planner)
    server.start()
    yield server, planner
    server.stop()


@pytest.fixture
def gov_settings(api_settings: Settings, llm: tuple[LocalServer, Planner]) -> Settings:
    server, _ = llm
    return api_settings.model_copy(
        update={"stepgate_llm_base_url": server.url("/v1/"), "stepgate_llm_model": "planner-1"}
    )


@pytest.fixture
async def gov(
    client: Client, gov_settings: Settings, registry: ToolRegistry, serve: Serve
) -> AsyncIterator[httpx.AsyncClient]:
    async with build_worker(client, gov_settings, registry), serve(gov_settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield http


Auth = Callable[[str], dict[str, str]]


async def govern(http: httpx.AsyncClient, as_: Auth, request: str, context: dict[str, Any]) -> str:
    r = await http.post(
        "/governed",
        json={"request": request, "context": context, "workflow_id": f"g-{uuid.uuid4().hex[:8]}"},
        headers=as_("olga"),
    )
    assert r.status_code == 201, r.text
    workflow_id: str = r.json()["workflow_id"]
    return workflow_id


async def phase(http: httpx.AsyncClient, as_: Auth, workflow_id: str, want: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        body: dict[str, Any] = (
            await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))
        ).json()
        return body

    return await eventually(
        probe, ok=lambda s: s.get("governed", {}).get("phase") == want, what=f"phase {want}"
    )


async def vote(
    http: httpx.AsyncClient,
    as_: Auth,
    workflow_id: str,
    who: str,
    action: str,
    comment: str | None = None,
) -> httpx.Response:
    body = {"action": action, **({"comment": comment} if comment else {})}
    return await http.post(f"/workflows/{workflow_id}/gates/review", json=body, headers=as_(who))


async def test_seed_scenario_tiers_decisions_and_memory(
    gov: httpx.AsyncClient, as_: Auth, llm: tuple[LocalServer, Planner]
) -> None:
    """Tier 1 runs on its own; tier 2 waits for a peer; tier 3 refuses the requester, is not done
    with one elder and completes with a second; a rejection is remembered with its comment; a
    later similar request's planner is shown that pattern, and /memory finds it."""
    http, (server, planner) = gov, llm
    # Tier 1: a read-only plan, approved by the policy, executed.
    one = await govern(
        http, as_, "summarize the release notes", {"text": "v2 is out", "environment": "staging"}
    )
    done = await phase(http, as_, one, "completed")
    assert done["governed"]["assessment"]["tier"] == 1 and done["governed"]["decision"] == "auto"
    assert (
        done["output"] == "v2 is out" and done["governed"]["child_workflow_id"] == f"{one}--execute"
    )

    # Tier 2: a POST to a webhook is medium risk: one peer approves it.
    two = await govern(
        http, as_, "announce the release to the team", {"text": "v2", "environment": "staging"}
    )
    waiting = await phase(http, as_, two, "review")
    gate = waiting["open_gates"][0]
    assert (waiting["governed"]["assessment"]["tier"], gate["gate"], gate["approvers"]) == (
        2,
        "review",
        ["role:peer"],
    )
    assert waiting["governed"]["assessment"]["reasons"][0]["step"] == "post"
    assert (await vote(http, as_, two, "pat", "approve", "ok")).status_code == 200
    await phase(http, as_, two, "completed")
    assert [s.path for s in server.seen if s.path == "/hook"] == ["/hook"]

    # Tier 3: production. The requester may not approve; one elder is not enough.
    three = await govern(
        http,
        as_,
        "summarize the incident for production",
        {"text": "db down", "environment": "production"},
    )
    waiting = await phase(http, as_, three, "review")
    assert waiting["governed"]["assessment"]["tier"] == 3
    refused = await vote(http, as_, three, "olga", "approve")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "self_approval")
    first = await vote(http, as_, three, "eve", "approve")
    assert first.json()["state"] == "open" and len(first.json()["approvals"]) == 1
    assert (await vote(http, as_, three, "ezra", "approve")).json()["state"] == "approved"
    assert (await phase(http, as_, three, "completed"))["output"] == "db down"

    # A rejected plan is remembered with its comment.
    four = await govern(
        http, as_, "announce the maintenance window", {"text": "sat 2am", "environment": "staging"}
    )
    await phase(http, as_, four, "review")
    assert (
        await vote(http, as_, four, "pat", "reject", "no broadcasts on Fridays")
    ).status_code == 200
    failed = await phase(http, as_, four, "failed")
    assert "rejected by pat" in failed["error"]

    async def remembered() -> list[dict[str, Any]]:
        r = await http.get(
            "/memory", params={"q": "announce maintenance window"}, headers=as_("vic")
        )
        hits: list[dict[str, Any]] = r.json()["hits"]
        return hits

    hits = await eventually(
        remembered, ok=lambda h: any(x["pattern"]["workflow_id"] == four for x in h), what="memory"
    )
    rejected = next(x["pattern"] for x in hits if x["pattern"]["workflow_id"] == four)
    assert (rejected["decision"], rejected["outcome"], rejected["comments"]) == (
        "rejected",
        "rejected",
        ["no broadcasts on Fridays"],
    )

    # A later, similar request: its planner is shown the rejected pattern and its comment.
    before = len(planner.prompts)
    five = await govern(
        http,
        as_,
        "announce the maintenance window again",
        {"text": "sun 2am", "environment": "staging"},
    )
    waiting = await phase(http, as_, five, "review")
    prompt = planner.prompts[before]
    assert "announce the maintenance window" in prompt and "no broadcasts on Fridays" in prompt
    assert four in waiting["governed"]["similar"]
    reasons = [r["rule"] for r in waiting["governed"]["assessment"]["reasons"]]
    assert "history" in reasons, "a similar rejected run raises the score"


async def test_modify_raising_tier_leaves_gate_to_new_approvers(
    gov: httpx.AsyncClient, as_: Auth, llm: tuple[LocalServer, Planner]
) -> None:
    """A peer who adds a high-risk step to a tier 2 plan makes it tier 3: the peer's modify is
    no elder's vote, so one elder's approval leaves the gate open (quorum 2) and nothing runs."""
    http, (server, planner) = gov, llm
    run = await govern(http, as_, "announce the release", {"text": "v3", "environment": "staging"})
    waiting = await phase(http, as_, run, "review")
    assert waiting["governed"]["assessment"]["tier"] == 2
    post = {
        "id": "post",
        "tool": "http.request",
        "with": {"method": "POST", "url": planner.hook, "json": {"text": "${input.text}"}},
    }
    risky = {"id": "wipe", "tool": "shell.run", "with": {"argv": ["true"]}}
    body = {"action": "modify", "patch": {"plan": {"steps": [post, risky]}}}
    r = await http.post(f"/workflows/{run}/gates/review", json=body, headers=as_("pat"))
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["approvers"]) == ("open", ["role:elder"])
    elder = await vote(http, as_, run, "eve", "approve")
    assert (elder.json()["state"], len(elder.json()["approvals"])) == ("open", 1), elder.text
    status = (await http.get(f"/workflows/{run}", headers=as_("vic"))).json()
    assert (status["governed"]["phase"], status["governed"]["assessment"]["tier"]) == ("review", 3)
    assert not [s for s in server.seen if s.path == "/hook"]
    assert (
        await http.post(f"/workflows/{run}/cancel", json={}, headers=as_("olga"))
    ).status_code == 202


async def test_a_governed_review_is_in_the_inbox_of_who_may_decide_it(
    gov: httpx.AsyncClient, as_: Auth
) -> None:
    """An elder finds the plan waiting for them in GET /approvals and in
    GET /workflows?awaiting=me, without knowing its id; a viewer, who may not decide it, finds
    it in neither."""
    http = gov
    run = await govern(http, as_, "deploy it", {"text": "v3", "environment": "production"})
    waiting = await phase(http, as_, run, "review")
    assert waiting["governed"]["assessment"]["tier"] == 3

    async def inbox(who: str) -> list[dict[str, Any]]:
        r = await http.get("/approvals", headers=as_(who))
        assert r.status_code in (200, 403), r.text
        if r.status_code == 403:
            return []
        return [i for i in r.json()["items"] if i["workflow_id"] == run]

    (item,) = await eventually(lambda: inbox("eve"), what="the review in the elder's inbox")
    assert (item["gate"], item["pipeline"], item["priority"]) == ("review", "governed", "high")
    assert item["actions"] == ["approve", "reject", "modify", "cancel"]
    assert item["digest"] == waiting["open_gates"][0]["digest"]
    # olga (operator and elder) may list runs; an elder alone may read the inbox only.
    mine = await http.get("/workflows", params={"awaiting": "me"}, headers=as_("olga"))
    assert mine.status_code == 200, mine.text
    listed = [w for w in mine.json()["items"] if w["workflow_id"] == run]
    assert [(w["pipeline"], w["awaiting"]) for w in listed] == [("governed", ["role:elder"])]
    assert await inbox("vic") == []
    theirs = await http.get("/workflows", params={"awaiting": "me"}, headers=as_("vic"))
    assert theirs.status_code == 200, theirs.text
    assert run not in [w["workflow_id"] for w in theirs.json()["items"]]
    assert (await vote(http, as_, run, "eve", "reject")).status_code == 200
    assert await eventually(lambda: inbox("ezra"), ok=lambda found: found == [], what="gone") == []


async def test_a_decided_review_is_one_gate_span_in_the_runs_trace(
    client: Client,
    gov_settings: Settings,
    registry: ToolRegistry,
    as_: Auth,
    llm: tuple[LocalServer, Planner],
) -> None:
    """With tracing on, a review a peer approves through the API is one `gate review` span under
    the run's StartWorkflow, linked to the deciding update, naming the governed pipeline."""
    with recording() as exporter:
        async with build_worker(traced(client), gov_settings, registry):
            async with serve_app(gov_settings, registry) as url:
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    run = await govern(
                        http, as_, "announce the release", {"text": "v2", "environment": "staging"}
                    )
                    await phase(http, as_, run, "review")
                    assert (await vote(http, as_, run, "pat", "approve")).status_code == 200
                    await phase(http, as_, run, "completed")
        spans = exporter.get_finished_spans()
    gate = named(spans, "gate review")
    assert parent_of(spans, gate) is named(spans, "StartWorkflow:GovernedWorkflow")
    update = named(spans, "StartWorkflowUpdate:submit_decision")
    assert [link.context.span_id for link in gate.links] == [update.context.span_id]  # type: ignore[union-attr]
    attrs = dict(gate.attributes or {})
    assert (attrs["stepgate.pipeline"], attrs["stepgate.gate.id"]) == ("governed", "review")
    assert (attrs["stepgate.gate.outcome"], attrs["stepgate.gate.deciders"]) == ("approve", 1)
