"""docs/catalog-codegen.md's examples are what the API takes: each request body is a valid
start or decision, each run input fits its pipeline's input schema, each decision is one the
named gate offers, and the tables of gates and actions are the definitions' own."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
import yaml

from activities import default_registry
from api.schemas.workflows import DecisionCreate, WorkflowCreate
from tests.conftest import ROOT
from workflows.language.definition import Definition
from workflows.language.validation import validate_definition, validate_input
from workflows.rules.gates import gate_spec, new_gate

PAGE = (ROOT / "docs" / "catalog-codegen.md").read_text()
FILES = {
    "java_springboot": "codegen/java_springboot.yaml",
    "nodejs_express": "codegen/nodejs_express.yaml",
    "package_application": "packaging/package_application.yaml",
}
# A quoted JSON argument of curl (-d) or of the terminal client (--input).
QUOTED = re.compile(r"(-d|--input) '(\{.*?\})'", re.S)
GATE_URL = re.compile(r"/workflows/([^/\s]+)/gates/(\w+)")


@cache
def definition(name: str) -> Definition:
    raw = yaml.safe_load((ROOT / "definitions" / FILES[name]).read_text())
    report = validate_definition(raw, default_registry(entry_points=False))
    assert report.definition is not None, [str(e) for e in report.errors]
    return report.definition


def examples() -> list[tuple[str, str, Any]]:
    """(flag, the console line it is on, the JSON) for every quoted JSON argument."""
    found = []
    for match in QUOTED.finditer(PAGE):
        line = PAGE[PAGE.rfind("\n$ ", 0, match.start()) + 1 : match.end()]
        found.append((match.group(1), line, json.loads(match.group(2))))
    return found


def named(workflow_id: str) -> str | None:
    """The pipeline a start example on the page started under `workflow_id`."""
    for _, _, body in examples():
        if body.get("workflow_id") == workflow_id:
            return str(body["definition"])
    return None


def test_the_page_has_examples_of_each_kind() -> None:
    """Starts of all three pipelines, decisions and a terminal start are shown."""
    starts = {body.get("definition") for flag, _, body in examples() if flag == "-d"}
    assert {"java_springboot", "package_application"} <= starts
    assert any(flag == "--input" for flag, _, _ in examples())
    assert any("action" in body for _, _, body in examples())


@pytest.mark.parametrize(("flag", "line", "body"), examples())
def test_example_is_a_request_the_api_takes(flag: str, line: str, body: Any) -> None:
    """A start names a catalog pipeline with an input its schema takes; a decision is a valid
    body whose action the gate it is sent to offers."""
    if flag == "--input":
        name = re.search(r"stepgate start (\w+)", line)
        assert name is not None, line
        assert validate_input(definition(name.group(1)), body) == []
    elif "definition" in body:
        WorkflowCreate.model_validate(body)
        assert validate_input(definition(body["definition"]), body["input"]) == []
    else:
        DecisionCreate.model_validate(body)
        where = GATE_URL.search(line)
        assert where is not None, line
        run, gate = where.groups()
        pipeline = next(name for name in FILES if run.startswith(name) or named(run) == name)
        assert body["action"] in offered(definition(pipeline), gate)


@pytest.mark.parametrize("name", ["java_springboot", "nodejs_express"])
def test_phase_table_states_each_gate_as_defined(name: str) -> None:
    """The phase table's gate, stage, actions and role are each gate's own (the Node.js
    pipeline shares the Java table, as the page says)."""
    table = PAGE[PAGE.index("| phase | steps |") : PAGE.index("Why these actions")]
    rows = [r.split(" | ") for r in table.splitlines()[2:] if r.startswith("|")]
    d = definition(name)
    gated = {s.id: s.approval for s in d.steps if s.approval is not None}
    assert len(rows) == len(gated) == 4
    for row in rows:
        gate = re.match(r"`(\w+)`", row[2])
        assert gate is not None, row
        approval = gated[gate.group(1)]
        actions = [a.split(" ")[0] for a in re.sub(r"\([^)]*\)", "", row[4]).split(", ")]
        assert row[3] == approval.stage
        assert sorted(actions) == sorted(offered(d, gate.group(1)))
        assert row[5].strip(" |`") == approval.approvers[0]


def offered(d: Definition, step_id: str) -> tuple[str, ...]:
    """The actions the run's gate of `step_id` offers, as the rules narrow them (a gate over a
    whole for_each list offers neither modify nor retry)."""
    step = d.step(step_id)
    assert step.approval is not None
    gate = new_gate(step_id, step_id, step.approval, step.approval.stage, None, datetime.now(UTC))
    spec = gate_spec(d, gate)
    assert spec is not None
    return spec.actions()


def test_json_blocks_parse() -> None:
    """Every ```json block on the page is JSON."""
    for block in re.findall(r"```json\n(.*?)```", PAGE, re.S):
        json.loads(block)
