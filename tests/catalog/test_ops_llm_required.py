"""A pipeline that asks an LLM (an llm.chat step, an agent step, or a child pipeline that does)
is refused at start with a 422 naming the missing setting when the API has no LLM endpoint; the
ops pipelines that need none start as before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from api.model_check import missing_llm_settings, model_issues
from tests.catalog.ops import Api, OpsService, ops_api, ops_service
from workflows.language.definition import Definition
from workflows.language.validation import validate_definition


@pytest.fixture
def ops() -> Iterator[OpsService]:
    with ops_service() as found:
        yield found


@pytest.fixture
async def api(
    client: Client, settings: Settings, tmp_path: Path, ops: OpsService
) -> AsyncIterator[Api]:
    async with ops_api(client, settings, tmp_path, ops, llm=False) as found:
        yield found


DEPLOY = {"repository": "acme/shop", "ref": "main", "registry": "http://127.0.0.1:9"}


async def test_a_pipeline_asking_a_model_is_refused_when_the_api_has_no_llm_endpoint(
    api: Api,
) -> None:
    """deploy_application (an llm.chat step), troubleshoot_failure (an agent step) and
    rework_loop (through its child) are each a 422 `llm_not_configured` naming
    STEPGATE_LLM_BASE_URL and the step that asks the model; a schedule of one is refused the
    same way; register_agent and health_check, which ask none, start."""
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("deploy_application", DEPLOY, "steps[1].tool", "llm.chat (step)"),
        ("troubleshoot_failure", {"registry": "http://127.0.0.1:9", "job": "j-1"},
         "steps[0].agent", "llm.chat (model)"),
        ("rework_loop", {"task": "write add()"}, "steps[0].pipeline", "'rework_round'"),
    ]  # fmt: skip
    for name, inp, path, said in cases:
        r = await api.start_request(name, inp)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "llm_not_configured", error
        assert "STEPGATE_LLM_BASE_URL" in error["message"]
        assert "the API and the worker" in error["message"]
        assert [(d["path"], said in d["message"]) for d in error["details"]] == [(path, True)]
    body = {"definition": "deploy_application", "input": DEPLOY, "interval": "1h"}
    r = await api.http.post("/schedules", json=body, headers=api.as_("olga"))
    assert r.status_code == 422 and r.json()["error"]["code"] == "llm_not_configured", r.text
    for name, inp in [
        ("register_agent", {"registry": "http://127.0.0.1:9", "hostname": "a.example.net"}),
        ("health_check", {"registry": "http://127.0.0.1:9"}),
    ]:
        r = await api.start_request(name, inp)
        assert r.status_code == 201, r.text


def settings_with(**llm: str) -> Settings:
    return Settings(_env_file=None, **llm)  # type: ignore[call-arg]


def test_the_missing_settings_are_named_each() -> None:
    """Without a base URL or a model each is named; a blank value counts as missing."""
    assert missing_llm_settings(settings_with()) == ["STEPGATE_LLM_BASE_URL", "STEPGATE_LLM_MODEL"]
    assert missing_llm_settings(
        settings_with(stepgate_llm_base_url="http://m/v1", stepgate_llm_model=" ")
    ) == ["STEPGATE_LLM_MODEL"]
    assert (
        missing_llm_settings(
            settings_with(stepgate_llm_base_url="http://m/v1", stepgate_llm_model="x")
        )
        == []
    )


def inline(steps: list[dict[str, Any]]) -> Definition:
    report = validate_definition(
        {"name": "t", "steps": steps}, default_registry(entry_points=False)
    )
    assert report.definition is not None, report.errors
    return report.definition


def test_every_place_that_asks_a_model_is_found_and_a_plans_allowance_is_not() -> None:
    """An llm.chat compensation and an llm.chat gate notification ask the model; a run-time
    plan allowed to call llm.chat does not, until it does (its own step fails then)."""
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    found = inline(
        [
            {"id": "a", "tool": "data.echo", "compensate": {"tool": "llm.chat", "with": chat}},
            {
                "id": "b",
                "tool": "data.echo",
                "approval": {
                    "approvers": ["role:ops"],
                    "notify": {"tool": "llm.chat", "with": chat},
                },
            },
            {
                "id": "c",
                "tool": "data.echo",
                "with": {"value": {"steps": []}},
            },
            {
                "id": "d",
                "needs": ["c"],
                "pipeline": {
                    "definition": "${steps.c.output.value}",
                    "allowed_tools": ["llm.chat"],
                },
            },
        ]
    )
    paths = [i.path for i in model_issues(found, {})]
    assert paths == ["steps[0].compensate.tool", "steps[1].approval.notify.tool"]


def test_a_grandchild_asking_a_model_is_named_through_its_parent() -> None:
    """A step running a child whose own child asks the model is named, with the chain; a child
    pipeline that asks none is not."""
    leaf = inline(
        [
            {
                "id": "ask",
                "tool": "llm.chat",
                "with": {"messages": [{"role": "user", "content": "hi"}]},
            }
        ]
    )
    mid = Definition.model_validate({"name": "mid", "steps": [{"id": "go", "pipeline": "leaf"}]})
    quiet = inline([{"id": "echo", "tool": "data.echo"}])
    top = Definition.model_validate(
        {"name": "top", "steps": [{"id": "a", "pipeline": "quiet"}, {"id": "b", "pipeline": "mid"}]}
    )
    issues = model_issues(top, {"leaf": leaf, "mid": mid, "quiet": quiet})
    assert [(i.path, i.message) for i in issues] == [
        (
            "steps[1].pipeline",
            "runs pipeline 'mid' (through pipeline 'leaf'), which asks the LLM endpoint",
        )
    ]
