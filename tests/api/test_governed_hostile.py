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

from tests.api.test_governed import (  # noqa: F401  (fixtures used by name)
    Auth,
    gov,
    gov_settings,
    keys,
    llm,
    phase,
)
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
