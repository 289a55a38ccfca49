"""docs/catalog-ops.md stays true: every request body, run input and decision it shows
validates against the API's models and the pipelines' input schemas, every gate it names is the
pipeline's with the actions it offers, every input table names the pipeline's fields, and the
refusal it quotes is the API's; docs/pipelines.md's sample is the shipped deploy_application,
shortened."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from activities import default_registry
from activities.config import Settings
from api.errors import ApiError
from api.model_check import check_model_settings
from api.schemas.schedules import ScheduleCreate
from api.schemas.workflows import DecisionCreate, WorkflowCreate
from tests.conftest import ROOT
from workflows.language.definition import STAGE_ACTIONS, Definition
from workflows.language.validation import validate_definition, validate_input

DOC = (ROOT / "docs" / "catalog-ops.md").read_text()
OPS = ("register_agent", "deploy_application", "troubleshoot_failure", "health_check")
# An agent step's call gates offer these, whatever the step (docs/agents.md, "Call gates").
CALL_GATE_ACTIONS = {"approve", "modify", "reject", "cancel"}


def shipped(name: str) -> Definition:
    raw = yaml.safe_load((ROOT / "definitions" / "ops" / f"{name}.yaml").read_text())
    report = validate_definition(raw, default_registry(entry_points=False))
    assert report.definition is not None, report.errors
    return report.definition


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.DOTALL)


def commands(text: str) -> list[str]:
    """Each shell command of the page's bash blocks, continuation lines joined."""
    out: list[str] = []
    for block in code_blocks(text, "bash"):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                out.append(command.split("  #")[0].strip())
    return out


def section(name: str) -> str:
    start = DOC.index(f"\n## {name}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


def test_every_request_body_and_run_input_on_the_page_validates() -> None:
    """Each curl body is a valid start, schedule or decision (its input valid for the pipeline
    it names); each `stepgate start` input is valid; each `stepgate approve` names a gate of the
    pipeline whose run it names."""
    definitions = {name: shipped(name) for name in OPS}
    seen = {"start": 0, "schedule": 0, "decision": 0, "cli": 0}
    for command in commands(DOC):
        if command.startswith("curl"):
            path = re.search(r"localhost:8000(/\S+)", command)
            body = re.search(r"-d '(.*?)'", command)
            assert path and body, command
            data = json.loads(body.group(1))
            if path.group(1) in ("/workflows", "/schedules"):
                model = WorkflowCreate if path.group(1) == "/workflows" else ScheduleCreate
                parsed = model.model_validate(data)
                assert isinstance(parsed.definition, str)
                assert validate_input(definitions[parsed.definition], parsed.input) == []
                seen["start" if model is WorkflowCreate else "schedule"] += 1
            else:
                run, gate = groups(r"/workflows/([^/]+)/gates/(\S+)", path.group(1))
                decision = DecisionCreate.model_validate(data)
                assert decision.action in offered(definitions, run, gate), command
                seen["decision"] += 1
        elif command.startswith("stepgate start"):
            name, inp = groups(r"stepgate start (\S+) --input '(.*)'", command)
            assert validate_input(definitions[name], json.loads(inp)) == [], command
            seen["cli"] += 1
        elif command.startswith("stepgate approve"):
            _, _, run, gate = command.split()
            assert "approve" in offered(definitions, run, gate), command
            seen["cli"] += 1
    assert seen == {"start": 2, "schedule": 1, "decision": 2, "cli": 6}, seen


def groups(pattern: str, text: str) -> tuple[str, ...]:
    found = re.fullmatch(pattern, text)
    assert found is not None, text
    return found.groups()


def offered(definitions: dict[str, Definition], run: str, gate: str) -> set[str]:
    """The actions gate `gate` of the run `run` (named `<pipeline>-<suffix>`) offers."""
    pipeline = definitions[run.rpartition("-")[0]]
    step_id, _, call = gate.partition(".call-")
    step = next(s for s in pipeline.steps if s.id == step_id)
    if call:
        assert step.agent is not None and call.isdigit()
        return CALL_GATE_ACTIONS
    assert step.approval is not None, gate
    return set(step.approval.allow or STAGE_ACTIONS[step.approval.stage])


@pytest.mark.parametrize("name", OPS)
def test_each_pipelines_gate_table_and_input_table_are_the_files(name: str) -> None:
    """The gates table of a pipeline's section lists each of its gates with its stage and
    exactly the actions it offers; the input table lists its input fields, the required ones
    said so."""
    definition = shipped(name)
    text = section(name)
    rows = re.findall(r"^\| `([^`]+)` \| (\w+)[^|]* \| ([a-z, ]+) \|", text, re.MULTILINE)
    gates = {
        s.id: (s.approval.stage, set(s.approval.allow or STAGE_ACTIONS[s.approval.stage]))
        for s in definition.steps
        if s.approval is not None and s.agent is None
    }
    agents = {
        f"{s.id}.call-<n>": ("before", CALL_GATE_ACTIONS) for s in definition.steps if s.agent
    }
    documented = {gate: (stage, set(actions.split(", "))) for gate, stage, actions in rows}
    assert documented == {**gates, **agents}
    fields = re.findall(r"^\| `(\w+)` \| (.*) \|$", text, re.MULTILINE)
    inputs = {f: "(required)" in what for f, what in fields if f not in documented}
    required = set(definition.input.get("required", []))
    assert inputs == {f: f in required for f in definition.input["properties"]}


def test_the_quoted_refusal_is_what_the_api_answers() -> None:
    """The start the page shows for deploy_application without an LLM endpoint is a valid one,
    and the 422 it quotes is the one check_model_settings raises, word for word."""
    block = next(b for b in code_blocks(DOC, "console") if "llm_not_configured" in b)
    command, answer = block.split("\n", 1)
    started = WorkflowCreate.model_validate_json(groups(r".* -d '(.*)'", command)[0])
    assert started.definition == "deploy_application"
    assert validate_input(shipped("deploy_application"), started.input) == []
    quoted = json.loads(answer)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ApiError) as raised:
        check_model_settings(shipped("deploy_application"), {}, settings)
    err = raised.value
    assert quoted == {"error": {"code": err.code, "message": err.message, "details": err.details}}


def test_the_languages_sample_is_the_shipped_deploy_application_shortened() -> None:
    """docs/pipelines.md's first definition validates, and has the shipped pipeline's name,
    version, required input and description, with each of its steps one of the shipped
    pipeline's, calling the same tool."""
    text = (ROOT / "docs" / "pipelines.md").read_text()
    sample = yaml.safe_load(code_blocks(text, "yaml")[0])
    report = validate_definition(sample, default_registry(entry_points=False))
    assert report.errors == []
    real = shipped("deploy_application")
    assert (sample["name"], sample["version"]) == (real.name, real.version)
    assert sample["input"]["required"] == real.input["required"]
    assert real.description.startswith(sample["description"])
    tools = {s.id: (s.tool or "").partition("@")[0] for s in real.steps}
    assert {s["id"]: s["tool"].partition("@")[0] for s in sample["steps"]}.items() <= tools.items()
