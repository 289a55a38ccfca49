"""docs/catalog-sdlc.md says what the shipped files do: its command lines are `stepgate`'s, its
sample inputs validate, its gate and input tables are the definition's, the governed request
file is a valid POST /governed body, and the policy shown is the one shipped."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities import default_registry
from activities.config import Settings
from activities.documents import parse_document
from api.auth import Caller
from api.cli import parser as cli_parser
from api.governed import build_governed
from api.schemas.workflows import GovernedCreate
from tests.conftest import ROOT
from workflows.language.catalog import Catalog
from workflows.language.definition import Definition
from workflows.language.validation import validate_input

PAGE = (ROOT / "docs" / "catalog-sdlc.md").read_text()
REQUEST = ROOT / "definitions" / "governed" / "request.json"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(ROOT / "definitions", default_registry(entry_points=False))


def commands() -> list[list[str]]:
    """Each `$ stepgate ...` line of the page, split as a shell would (comments dropped)."""
    lines = re.findall(r"^\$ (stepgate .+)$", PAGE, re.MULTILINE)
    return [shlex.split(line, comments=True)[1:] for line in lines]


def rows(heading: str) -> list[list[str]]:
    """The cells of the first table after the paragraph starting with `heading`."""
    part = PAGE[PAGE.index(heading) :]
    table = re.search(r"((?:^\|.*\|\n)+)", part, re.MULTILINE)
    assert table is not None, heading
    found = [[c.strip() for c in line.strip("|").split("|")] for line in table[1].splitlines()]
    return found[2:]  # the header and its rule


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_page_shows_stepgate_command_lines_that_parse() -> None:
    """Every `stepgate` line on the page is a command line the client takes."""
    found = commands()
    assert len(found) >= 9
    for argv in found:
        try:
            cli_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"`stepgate {shlex.join(argv)}` is not a stepgate command line")


def test_the_sample_run_input_validates(catalog: Catalog) -> None:
    """The input of the sample `stepgate start greenfield_sdlc` fits the pipeline's schema, and
    the input table names exactly the schema's fields."""
    (start,) = [a for a in commands() if a[0] == "start"]
    args = cli_parser().parse_args(start)
    definition = catalog.get(args.definition)
    assert validate_input(definition, json.loads(args.input)) == []
    fields = [names(row[0])[0] for row in rows("**Input.**")]
    assert fields == list(definition.input["properties"])
    assert definition.input["required"] == fields


def test_the_gate_table_is_the_pipelines_gates(catalog: Catalog) -> None:
    """Each gate row (stage, approvers, actions) is what greenfield_sdlc's step declares, and
    every gate of the pipeline has a row."""
    definition = catalog.get("greenfield_sdlc")
    gated = {s.id: s.approval for s in definition.steps if s.approval is not None}
    table = rows("**Gate actions by stage.**")
    assert [names(r[0])[0] for r in table] == list(gated)
    for gate, stage, who, actions, _ in table:
        approval = gated[names(gate)[0]]
        assert approval is not None
        assert stage == approval.stage and names(who) == list(approval.approvers)
        assert actions.split(", ") == list(approval.actions())


def test_the_child_table_names_each_handoff(catalog: Catalog) -> None:
    """Each child pipeline the page lists is in the catalog, and each `pipeline:` step of
    greenfield_sdlc that hands on to another role declares its output_schema."""
    listed = {n for row in rows("| child pipeline") for n in names(row[0])}
    assert listed <= set(catalog.names())
    definition: Definition = catalog.get("greenfield_sdlc")
    children = {s.id: s for s in definition.steps if s.pipeline is not None}
    assert {str(s.pipeline) for s in children.values()} <= listed
    for step_id in ("analysis", "architecture", "build"):
        assert children[step_id].output_schema is not None, step_id


def test_the_governed_request_file_is_a_valid_post_governed_body() -> None:
    """The request file passes every check POST /governed makes (the body's shape, the policy,
    the plan as a definition and within the policy, the context against the plan's input), and
    so does the page's `--context` override."""
    body: dict[str, Any] = json.loads(REQUEST.read_text())
    GovernedCreate.model_validate(body)
    settings = Settings(stepgate_definitions_dir=ROOT / "definitions", _env_file=None)  # type: ignore[call-arg]
    caller = Caller("olga", ("operator",), frozenset({"start_governed"}))
    registry = default_registry(entry_points=False)
    build_governed(body["request"], body["context"], body["plan"], None, caller, registry, settings)
    (govern,) = [a for a in commands() if a[0] == "govern"]
    args = cli_parser().parse_args(govern)
    assert Path(ROOT / args.file) == REQUEST
    plan = Definition.model_validate(body["plan"])
    assert validate_input(plan, json.loads(args.context)) == []


def test_the_policy_shown_is_the_one_shipped() -> None:
    """The YAML block on the page is definitions/policies/default.yaml, value for value."""
    block = PAGE.split("```yaml\n", 1)[1].split("```", 1)[0]
    shipped = parse_document((ROOT / "definitions" / "policies" / "default.yaml").read_text())
    assert yaml.safe_load(block) == shipped
