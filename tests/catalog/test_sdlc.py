"""greenfield_sdlc end to end on the real dev server: each role's child pipeline against a
scripted model, the architect's risk routing the run, the tester sending the developer back, the
documentation written meanwhile, and ops releasing to a deployment service on loopback."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from activities.config import Settings
from tests.catalog.sdlc_team import STORIES, Team, stack
from tests.support.util import eventually

# The whole pipeline is a dozen child runs; on two busy cores a phase can take a while.
WITHIN = 120.0


async def status(http: httpx.AsyncClient, keys: dict[str, str], workflow_id: str) -> Any:
    got = await http.get(f"/workflows/{workflow_id}", headers=auth(keys, "vic"))
    assert got.status_code == 200, got.text
    return got.json()


def auth(keys: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[who]}"}


def step(found: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in found["steps"] if s["id"] == step_id)  # type: ignore[no-any-return]


async def gate_open(
    http: httpx.AsyncClient, keys: dict[str, str], workflow_id: str, gate: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's status once `gate` is open, and the gate; fails early if the run closes."""

    async def probe() -> Any:
        found = await status(http, keys, workflow_id)
        assert found["state"] in ("running", "waiting"), found
        return found

    found = await eventually(
        probe,
        ok=lambda s: any(g["gate"] == gate for g in s["open_gates"]),
        within=WITHIN,
        interval=0.2,
        what=f"gate {gate} open",
    )
    return found, next(g for g in found["open_gates"] if g["gate"] == gate)


async def decide(
    http: httpx.AsyncClient, keys: dict[str, str], who: str, workflow_id: str, gate: Any
) -> None:
    r = await http.post(
        f"/workflows/{workflow_id}/gates/{gate['gate']}",
        json={"action": "approve", "digest": gate["digest"], "comment": f"{who} agrees"},
        headers=auth(keys, who),
    )
    assert r.status_code == 200, r.text


async def closed(http: httpx.AsyncClient, keys: dict[str, str], workflow_id: str) -> Any:
    return await eventually(
        lambda: status(http, keys, workflow_id),
        ok=lambda s: s["state"] in ("completed", "failed", "cancelled"),
        within=WITHIN,
        interval=0.2,
        what=f"{workflow_id} closed",
    )


async def start(http: httpx.AsyncClient, keys: dict[str, str], team: Team, environment: str) -> str:
    body = {
        "definition": "greenfield_sdlc",
        "input": {
            "project": "splitwise",
            "requirements": "Members of a group record expenses and see who owes whom.",
            "environment": environment,
            "deploy_url": team.deploy_url,
        },
        "workflow_id": f"sdlc-{uuid.uuid4().hex[:8]}",
    }
    r = await http.post("/workflows", json=body, headers=auth(keys, "olga"))
    assert r.status_code == 201, r.text
    return str(r.json()["workflow_id"])


async def test_greenfield_sdlc_high_risk_reworks_and_releases(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A high-risk design waits for an architect (urgent) and then a security review, while the
    documentation is already written; the tester fails round one, the developer gets the
    findings and round two passes; ops release to production (urgent) and the deployment service
    is asked once, with an idempotency key, and followed until it succeeds."""
    with Team(risk="high") as team:
        team.verdicts = [
            {"passed": False, "findings": "split ignores rounding", "failed_stories": ["US-2"]},
            {"passed": True, "findings": "", "failed_stories": []},
        ]
        async with stack(client, settings, tmp_path, team.server.url("/v1/")) as (http, keys):
            workflow_id = await start(http, keys, team, "production")
            _, design = await gate_open(http, keys, workflow_id, "architecture")
            assert (design["priority"], design["approvers"]) == ("urgent", ["role:architects"])
            assert design["review"].startswith("Design of splitwise, risk high")
            assert design["subject"]["components"][0]["name"] == "api"
            assert "US-2" in team.prompts["architect"][0]
            refused = await http.post(
                f"/workflows/{workflow_id}/gates/architecture",
                json={"action": "approve"},
                headers=auth(keys, "otto"),
            )
            assert refused.status_code == 403, refused.text
            await decide(http, keys, "ada", workflow_id, design)

            found, security = await gate_open(http, keys, workflow_id, "security_review")
            assert security["subject"]["json"]["mitigations"] == ["check the owner on every write"]

            # The documentation does not wait for the security review: it is written meanwhile.
            found = await eventually(
                lambda: status(http, keys, workflow_id),
                ok=lambda s: step(s, "documentation")["state"] == "succeeded",
                within=WITHIN,
                interval=0.2,
                what="documentation written",
            )
            assert [g["gate"] for g in found["open_gates"]] == ["security_review"]
            assert step(found, "build")["state"] == "pending"
            await decide(http, keys, "sam", workflow_id, security)

            found, release = await gate_open(http, keys, workflow_id, "deploy")
            assert release["priority"] == "urgent" and release["approvers"] == ["role:ops"]
            assert release["review"] == "Release splitwise to production (round 2)"
            assert [i["until"] for i in step(found, "build")["iterations"]] == [False, True]
            assert "split ignores rounding" in team.prompts["developer"][1]
            assert "split ignores rounding" not in team.prompts["developer"][0]
            assert team.seen("POST", "/deploy/deployments") == []
            await decide(http, keys, "otto", workflow_id, release)

            done = await closed(http, keys, workflow_id)
            assert done["state"] == "completed", done.get("error")
            out = done["output"]
            assert out["risk"] == "high" and out["stories"] == STORIES
            assert out["files"][0] == {"path": "app/main.py", "content": "# round 2\n"}
            assert set(out["docs"]) == {"user_guide", "runbook"}
            assert out["docs"]["runbook"]["size"] > 0
            assert out["deployment"]["status"] == "succeeded"
            assert out["deployment"]["strategy"] == "rolling"
            (posted,) = team.seen("POST", "/deploy/deployments")
            assert posted.headers.get("idempotency-key")
            sent = posted.json()
            assert (sent["project"], sent["environment"]) == ("splitwise", "production")
            assert [a["sha256"] for a in sent["artifacts"]] and len(sent["artifacts"]) == 2
            assert team.seen("POST", "/deploy/deployments/dep-1/rollback") == []


async def test_greenfield_sdlc_low_risk_skips_reviews_and_rolls_back_a_failed_rollout(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A low-risk design is approved without a person (the audit says why) and gets no security
    review; the tester passes at once; a staging release is of normal priority; a rollout that
    ends badly fails the run, naming it, and the deployer rolls the deployment back."""
    with Team(risk="low") as team:
        team.rollout = ["running", "failed"]
        async with stack(client, settings, tmp_path, team.server.url("/v1/")) as (http, keys):
            workflow_id = await start(http, keys, team, "staging")
            found, release = await gate_open(http, keys, workflow_id, "deploy")
            assert release["priority"] == "normal"
            assert step(found, "security_review")["state"] == "skipped"
            assert team.prompts["security reviewer"] == []
            assert len(team.prompts["tester"]) == 1
            audit = (
                await http.get(f"/workflows/{workflow_id}/audit", headers=auth(keys, "vic"))
            ).json()["entries"]
            auto = [e for e in audit if e["kind"] == "auto_approve"]
            assert [(e["gate"], e["action"]) for e in auto] == [("architecture", "approve")]
            await decide(http, keys, "otto", workflow_id, release)

            done = await closed(http, keys, workflow_id)
            assert done["state"] == "failed"
            assert "the deployment did not succeed" in done["error"]
            assert len(team.seen("POST", "/deploy/deployments/dep-1/rollback")) == 1


async def test_greenfield_sdlc_refuses_a_file_path_out_of_the_release(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A developer model naming a file `../../etc/cron.d/x` is asked again and, answering the
    same, fails the build naming the path's pattern: no file is written, nobody is asked to
    release it, and the deployment service hears nothing."""
    with Team(risk="low") as team:
        team.files = [{"path": "../../etc/cron.d/x", "content": "* * * * * root sh"}]
        async with stack(client, settings, tmp_path, team.server.url("/v1/")) as (http, keys):
            workflow_id = await start(http, keys, team, "staging")
            done = await closed(http, keys, workflow_id)
            assert done["state"] == "failed"
            assert "files[0].path: '../../etc/cron.d/x' does not match" in done["error"]
            assert len(team.prompts["developer"]) == 3 and team.prompts["tester"] == []
            assert not done["open_gates"] and team.seen("POST", "/deploy/deployments") == []
            assert not list(tmp_path.rglob("cron.d"))
