"""Governed runs under hostile input: what POST /governed refuses (with the field and why), a
planner that keeps answering with plans the policy forbids, and context text that looks like a
reference."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.config import Settings
from tests.api.conftest import Serve
from tests.api.test_governed import (  # noqa: F401  (fixtures used by name)
    Auth,
    gov,
    gov_settings,
    keys,
    llm,
    phase,
)
from tests.support.util import eventually
from tests.tools.server import LocalServer, Reply, Seen, json_reply

ECHO_PLAN: dict[str, Any] = {
    "name": "echo",
    "input": {"type": "object", "properties": {"text": {"type": "string"}}},
    "steps": [{"id": "echo", "tool": "data.echo", "with": {"value": "${input.text}"}}],
    "output": "${steps.echo.output.value}",
}
SHELL_PLAN: dict[str, Any] = {
    "name": "wipe",
    "steps": [{"id": "wipe", "tool": "shell.run", "with": {"argv": ["rm", "-rf", "/srv"]}}],
}
NARROW = """
name: narrow
max_steps: 3
planner_attempts: 2
allowed_tools: [data.echo, data.transform]
"""


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


async def start(http: httpx.AsyncClient, as_: Auth, who: str, **body: Any) -> httpx.Response:
    body.setdefault("request", "do the thing")
    body.setdefault("workflow_id", f"g-{uuid.uuid4().hex[:8]}")
    return await http.post("/governed", json=body, headers=as_(who))


def fields(r: httpx.Response) -> list[str]:
    return [d["path"] for d in r.json()["error"]["details"] or []]


@pytest.fixture
def narrow_policy(definitions: Path) -> str:
    (definitions / "policies" / "narrow.yaml").write_text(NARROW)
    return "narrow"


async def test_governed_start_refuses_forbidden_plans_and_bad_fields_with_their_paths(
    gov: httpx.AsyncClient,  # noqa: F811  (the fixture imported above)
    as_: Auth,
    narrow_policy: str,
) -> None:
    """A viewer may not start one; a plan with secrets, another pipeline, a tool outside the
    policy or too many steps, an unknown or path-like policy, a context that does not fit the plan's input,
    an oversized request and a context nested too deep are each refused with a 4xx naming the
    field."""
    http = gov
    assert (await start(http, as_, "vic", plan=ECHO_PLAN)).status_code == 403

    with_secret = {**ECHO_PLAN, "secrets": ["API_TOKEN"]}
    r = await start(http, as_, "olga", plan=with_secret)
    assert r.status_code == 422 and "plan.secrets" in fields(r), r.text

    other = {"name": "x", "steps": [{"id": "p", "pipeline": "approval_demo", "with": {}}]}
    r = await start(http, as_, "olga", plan=other)
    assert r.status_code == 422 and "plan.steps[0].pipeline" in fields(r), r.text

    r = await start(http, as_, "olga", plan=SHELL_PLAN, policy=narrow_policy)
    assert r.status_code == 422 and "plan.steps[0].tool" in fields(r), r.text
    assert "shell.run" in r.text and "not allowed" in r.text

    long_plan = {
        "name": "long",
        "steps": [{"id": f"s{i}", "tool": "data.echo", "with": {"value": i}} for i in range(4)],
    }
    r = await start(http, as_, "olga", plan=long_plan, policy=narrow_policy)
    assert r.status_code == 422 and "plan.steps" in fields(r), r.text

    r = await start(http, as_, "olga", plan=ECHO_PLAN, policy="../../etc/passwd")
    assert r.status_code == 422 and "body.policy" in fields(r), r.text
    r = await start(http, as_, "olga", plan=ECHO_PLAN, policy="nosuch")
    assert r.status_code == 422 and fields(r) == ["policy"], r.text

    r = await start(http, as_, "olga", plan=ECHO_PLAN, context={"text": ["not", "a", "string"]})
    assert r.status_code == 422 and fields(r) == ["context.text"], r.text

    r = await start(http, as_, "olga", request="x" * 10_001)
    assert r.status_code == 422 and "body.request" in fields(r), r.text

    r = await start(http, as_, "olga", plan=ECHO_PLAN, context=nested(300))
    assert r.status_code in (413, 422), r.text
    assert r.json()["error"]["code"] != "internal"


class StubbornPlanner:
    """An OpenAI-compatible endpoint that always proposes a shell command, and keeps the
    conversations it was sent."""

    def __init__(self) -> None:
        self.conversations: list[list[dict[str, Any]]] = []

    def __call__(self, seen: Seen) -> Reply:
        body = seen.json()
        self.conversations.append(body["messages"])
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": json.dumps(SHELL_PLAN)},
            "finish_reason": "stop",
        }
        return json_reply({"model": body["model"], "choices": [choice], "usage": {}})


async def test_planner_is_sent_every_error_and_the_run_fails_after_its_attempts(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
    llm: tuple[LocalServer, Any],  # noqa: F811
    narrow_policy: str,
) -> None:
    """A planner that keeps proposing a tool the policy forbids is shown the error with its path
    on each repair, and after the policy's two attempts the run fails naming that error; nothing
    ran."""
    server, _ = llm
    stubborn = StubbornPlanner()
    server.route("POST", "/v1/chat/completions", stubborn)
    r = await start(gov, as_, "olga", policy=narrow_policy, context={"text": "hi"})
    assert r.status_code == 201, r.text
    failed = await phase(gov, as_, r.json()["workflow_id"], "failed")
    assert "steps[0].tool" in failed["error"] and "shell.run" in failed["error"], failed["error"]
    assert len(stubborn.conversations) == 2
    repair = stubborn.conversations[1][-1]["content"]
    assert "not valid" in repair and "steps[0].tool" in repair and "shell.run" in repair
    assert failed["governed"]["child_workflow_id"] is None


async def test_context_that_looks_like_a_reference_stays_text_in_a_governed_run(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Context is the plan's input: `${secret.…}` or `${steps.…}` inside it is carried as text
    through the tier-1 run to its output, never resolved."""
    monkeypatch.setenv("STEPGATE_SECRET_API_TOKEN", "tok-" + uuid.uuid4().hex)
    text = "${secret.API_TOKEN} and ${steps.echo.output}"
    r = await start(
        gov, as_, "olga", plan=ECHO_PLAN, context={"text": text, "environment": "staging"}
    )
    assert r.status_code == 201, r.text
    done = await phase(gov, as_, r.json()["workflow_id"], "completed")
    assert done["output"] == text


# ---- every tool a plan can reach is governed --------------------------------------------------

# A harmless echo whose compensation lists the root folder, then a failure that sets it off: it
# scored 0 (tier 1, approved by the policy) when only each step's own tool was scored.
UNDO_SHELL: list[dict[str, Any]] = [
    {
        "id": "echo",
        "tool": "data.echo",
        "with": {"value": "${input.text}"},
        "compensate": {"tool": "shell.run", "with": {"argv": ["ls", "-la", "/"]}},
    },
    {"id": "boom", "tool": "flow.fail", "needs": ["echo"], "with": {"message": "undo"}},
]
DATA_ONLY = """
name: data_only
auto_approve_tier1: false
allowed_tools: [data.echo, data.transform, flow.fail]
"""


def compensated_plan() -> dict[str, Any]:
    return {**ECHO_PLAN, "name": "undo", "steps": UNDO_SHELL, "output": None}


def notifying(hook: str) -> dict[str, Any]:
    """ECHO_PLAN whose step's gate notifies a webhook the plan chose, with the run's context."""
    step = {
        **ECHO_PLAN["steps"][0],
        "approval": {
            "approvers": ["role:peer"],
            "notify": {
                "tool": "notify.webhook",
                "with": {"url": hook, "attachments": [{"text": "${input.text}"}]},
            },
        },
    }
    return {**ECHO_PLAN, "steps": [step]}


async def settled(http: httpx.AsyncClient, as_: Auth, workflow_id: str) -> dict[str, Any]:
    """The status once the run has left its plan phase (reviewed, running, or over)."""

    async def probe() -> dict[str, Any]:
        r = await http.get(f"/workflows/{workflow_id}", headers=as_("vic"))
        body: dict[str, Any] = r.json()
        return body

    return await eventually(
        probe,
        ok=lambda s: s.get("governed", {}).get("phase") not in (None, "plan"),
        what="the plan assessed",
    )


@pytest.fixture
def data_only(definitions: Path) -> str:
    (definitions / "policies" / "data_only.yaml").write_text(DATA_ONLY)
    return "data_only"


async def test_a_compensation_is_scored_so_a_shell_undo_waits_for_two_elders(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
) -> None:
    """An operator with no approver role proposes an echo whose compensation runs shell.run,
    then a failure: the compensation's high risk makes it tier 3, so it waits at review for two
    elders, naming the compensation in its reasons, and nothing runs."""
    r = await start(gov, as_, "opal", plan=compensated_plan(), context={"text": "hi"})
    assert r.status_code == 201, r.text
    run = r.json()["workflow_id"]
    status = await settled(gov, as_, run)
    governed = status["governed"]
    assert (governed["phase"], governed["assessment"]["tier"]) == ("review", 3), governed
    assert [(x["step"], x["call"]) for x in governed["assessment"]["reasons"]] == [
        ("echo", "steps[0].compensate.tool")
    ]
    assert status["open_gates"][0]["approvers"] == ["role:elder"]
    assert governed["child_workflow_id"] is None
    cancel = await gov.post(f"/workflows/{run}/cancel", json={}, headers=as_("olga"))
    assert cancel.status_code == 202


async def test_a_peers_modify_into_a_shell_undo_leaves_the_plan_to_the_elders(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
    llm: tuple[LocalServer, Any],  # noqa: F811
) -> None:
    """A peer turns a tier-2 plan (a POST) into the echo-with-shell-compensation shape: it is
    re-assessed as tier 3, the gate moves to the elders, the peer's modify is no elder's vote,
    and nothing runs."""
    server, planner = llm
    post = {
        **ECHO_PLAN,
        "name": "announce",
        "steps": [
            {"id": "post", "tool": "http.request", "with": {"method": "POST", "url": planner.hook}}
        ],
        "output": None,
    }
    r = await start(gov, as_, "opal", plan=post, context={"text": "hi"})
    assert r.status_code == 201, r.text
    run = r.json()["workflow_id"]
    waiting = await phase(gov, as_, run, "review")
    assert waiting["governed"]["assessment"]["tier"] == 2
    body = {"action": "modify", "patch": {"plan": {"steps": UNDO_SHELL}}}
    r = await gov.post(f"/workflows/{run}/gates/review", json=body, headers=as_("pat"))
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["approvers"], r.json()["approvals"]) == (
        "open",
        ["role:elder"],
        [],
    )
    status = (await gov.get(f"/workflows/{run}", headers=as_("vic"))).json()
    assert (status["governed"]["phase"], status["governed"]["assessment"]["tier"]) == ("review", 3)
    assert status["governed"]["child_workflow_id"] is None
    assert not [s for s in server.seen if s.path == "/hook"]
    cancel = await gov.post(f"/workflows/{run}/cancel", json={}, headers=as_("olga"))
    assert cancel.status_code == 202


async def test_a_gate_notification_outside_the_policys_tools_is_refused_at_start_and_at_modify(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
    llm: tuple[LocalServer, Any],  # noqa: F811
    data_only: str,
) -> None:
    """Under a policy allowing only data tools and flow.fail, a plan whose gate notifies a
    webhook is refused with a 422 naming the notification's path, and a peer's modify that adds
    the same notification to a plan under review is refused (bad_patch) with that path; the
    webhook is never called."""
    server, planner = llm
    r = await start(
        gov, as_, "opal", plan=notifying(planner.hook), policy=data_only, context={"text": "ctx"}
    )
    assert r.status_code == 422, r.text
    assert "plan.steps[0].approval.notify.tool" in fields(r) and "notify.webhook" in r.text

    r = await start(gov, as_, "opal", plan=ECHO_PLAN, policy=data_only, context={"text": "ctx"})
    assert r.status_code == 201, r.text
    run = r.json()["workflow_id"]
    await phase(gov, as_, run, "review")
    body = {"action": "modify", "patch": {"plan": {"steps": notifying(planner.hook)["steps"]}}}
    r = await gov.post(f"/workflows/{run}/gates/review", json=body, headers=as_("pat"))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_patch"), r.text
    assert "steps[0].approval.notify.tool" in r.json()["error"]["message"]
    status = (await gov.get(f"/workflows/{run}", headers=as_("vic"))).json()
    assert status["open_gates"][0]["state"] == "open"
    assert "approval" not in status["governed"]["plan"]["steps"][0]
    assert not [s for s in server.seen if s.path == "/hook"]
    cancel = await gov.post(f"/workflows/{run}/cancel", json={}, headers=as_("olga"))
    assert cancel.status_code == 202


async def test_a_plans_task_queue_is_refused_unless_the_policy_allows_it(
    gov: httpx.AsyncClient,  # noqa: F811
    as_: Auth,
    definitions: Path,
    task_queue: str,
) -> None:
    """A plan step naming another team's task queue is refused with a 422 naming the step's
    task_queue; under a policy that lists the queue in allowed_task_queues the same plan runs
    there and completes."""
    step = {**ECHO_PLAN["steps"][0], "task_queue": "other-team"}
    r = await start(gov, as_, "opal", plan={**ECHO_PLAN, "steps": [step]}, context={"text": "x"})
    assert r.status_code == 422, r.text
    assert fields(r) == ["plan.steps[0].task_queue"] and "other-team" in r.text

    (definitions / "policies" / "queues.yaml").write_text(
        f"name: queues\nallowed_task_queues: [{task_queue}]\n"
    )
    ours = {**ECHO_PLAN, "steps": [{**step, "task_queue": task_queue}]}
    r = await start(gov, as_, "opal", plan=ours, policy="queues", context={"text": "x"})
    assert r.status_code == 201, r.text
    done = await phase(gov, as_, r.json()["workflow_id"], "completed")
    assert done["output"] == "x"


ASKING_PLAN: dict[str, Any] = {
    "name": "ask",
    "steps": [
        {
            "id": "ask",
            "tool": "llm.chat",
            "with": {"messages": [{"role": "user", "content": "summarize"}]},
        }
    ],
}


async def test_a_governed_run_that_needs_an_llm_is_refused_when_the_api_has_none(
    client: Client,
    api_settings: Settings,
    serve: Serve,
    as_: Auth,
    keys: dict[str, str],  # noqa: F811  (the fixture imported above)
    definitions: Path,
) -> None:
    """With no LLM endpoint on the API: no plan (the planner would write one), a plan with an
    llm.chat step, and a policy with an LLM assessor are each a 422 `llm_not_configured` naming
    where the model is needed and the setting to set; a plan asking no model, under a policy
    without an assessor, starts."""
    (definitions / "policies" / "assessed.yaml").write_text("name: assessed\nllm_assessor: true\n")
    bare = api_settings.model_copy(update={"stepgate_llm_base_url": "", "stepgate_llm_model": ""})
    async with serve(bare) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        cases: list[tuple[dict[str, Any], list[str]]] = [
            ({}, ["plan"]),
            ({"plan": ASKING_PLAN}, ["plan.steps[0].tool"]),
            ({"plan": ECHO_PLAN, "context": {"text": "x"}, "policy": "assessed"}, ["policy"]),
        ]
        for body, paths in cases:
            r = await start(http, as_, "olga", **body)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "llm_not_configured", error
            assert "STEPGATE_LLM_BASE_URL" in error["message"]
            assert fields(r) == paths
        r = await start(http, as_, "olga", plan=ECHO_PLAN, context={"text": "x"})
        assert r.status_code == 201, r.text
    await client.get_workflow_handle(r.json()["workflow_id"]).terminate("test over")
