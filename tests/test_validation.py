"""Definition validation: every mistake reported at once, each with its path and reason."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from activities import default_registry
from activities.registry import ToolRegistry
from workflows.language.validation import validate_definition, validate_input


@pytest.fixture(scope="module")
def tools() -> ToolRegistry:
    return default_registry(entry_points=False)


def errors(doc: str | dict[str, Any], tools: ToolRegistry, **kw: Any) -> list[str]:
    raw = yaml.safe_load(doc) if isinstance(doc, str) else doc
    return [str(e) for e in validate_definition(raw, tools, **kw).errors]


def test_validate_reports_every_mistake_with_its_path(tools: ToolRegistry) -> None:
    """A definition with many mistakes lists each one, with where and why, in one report."""
    found = errors(
        """
name: broken
input: {type: object, properties: {repo: {type: string}}}
steps:
  - id: fetch
    tool: http.request
    with: {url: "${input.repository}"}
    timeout: 10 parsecs
  - id: fetch
    tool: http.requests
  - id: build
    tool: shell.run@7
    needs: [deploy, test]
  - id: deploy
    tool: data.echo
    needs: [build]
    with: {value: "${steps.later.output.x}", bad: "${stepz.build}", open: "${input.repo"}
    if: "steps.build.output.code =="
  - id: later
    tool: data.echo
    needs: [fetch]
    approval: {approvers: [ops], on_timeout: escalate}
""",
        tools,
    )
    expected = [
        "steps[0].timeout: bad duration '10 parsecs'",
        "steps[4].approval.approvers",
        "steps[1].id: duplicate step id 'fetch' (first at steps[0])",
        "steps[2].needs: unknown step 'test'",
        "cycle: build -> deploy -> build",
        "steps[1].tool: unknown tool 'http.requests'",
        "steps[2].tool: tool 'shell.run' has no version matching '7' (have: 1.0.0)",
        "steps[0].with.url: ${input.repository}: input field 'repository' is not in the input schema",
        "steps[3].with.value: ${steps.later.output.x}: step 'later' is not upstream (add it to needs)",
        "steps[3].with.bad: malformed reference '${stepz.build}': must start with input, steps, run, secret, or (where they exist) item, index, previous, output, iteration",
        "steps[3].with.open: malformed reference in '${input.repo': unclosed '${'",
        "steps[3].if: bad condition: expected more input, got end of expression",
    ]
    text = "\n".join(found)
    for fragment in expected:
        assert any(fragment in f for f in found), f"missing {fragment!r} in:\n{text}"


def test_validate_accepts_a_good_definition_and_pins_tool_versions(tools: ToolRegistry) -> None:
    """A valid definition passes and each step's tool is pinned to an exact version."""
    report = validate_definition(
        yaml.safe_load(
            """
name: ok
steps:
  - id: a
    tool: data.echo@1
    with: {value: 1}
    compensate: {tool: data.echo, with: {value: "${steps.a.output.value}"}}
  - id: b
    needs: [a]
    tool: data.transform
    with: {data: "${steps.a.output}", expression: value}
    if: "steps.a.output.value == 1"
output: "${steps.b.output.result}"
"""
        ),
        tools,
    )
    assert report.valid, report.errors
    assert report.definition is not None
    assert [s.resolved_tool for s in report.definition.steps] == [
        "data.echo@1.0.0",
        "data.transform@1.0.0",
    ]
    assert report.definition.steps[0].compensate is not None
    assert report.definition.steps[0].compensate.resolved_tool == "data.echo@1.0.0"


def test_validate_refuses_non_mapping_and_missing_steps(tools: ToolRegistry) -> None:
    """Something that is not a definition at all gets a clear top-level message."""
    assert errors("[1, 2]", tools) == ["a definition must be a mapping with name and steps"]
    assert any(e.startswith("steps: Field required") for e in errors("name: x", tools))


def test_validate_child_pipeline_must_exist_in_catalog(tools: ToolRegistry) -> None:
    """A `pipeline:` step must name a catalog pipeline, and a pipeline cannot run itself."""
    doc = {"name": "p", "steps": [{"id": "a", "pipeline": "nope"}, {"id": "b", "pipeline": "p"}]}
    found = errors(doc, tools, catalog={"other": None})
    assert "steps[0].pipeline: unknown pipeline 'nope' (catalog has: other)" in found
    assert "steps[1].pipeline: pipeline 'p' cannot run itself" in found


def test_validate_step_needs_exactly_one_of_tool_or_pipeline(tools: ToolRegistry) -> None:
    """A step with neither or both of tool and pipeline is refused."""
    found = errors(
        {"name": "p", "steps": [{"id": "a"}, {"id": "b", "tool": "data.echo", "pipeline": "x"}]},
        tools,
    )
    assert sum("exactly one of 'tool', 'pipeline' or 'agent'" in e for e in found) == 2


def test_validate_gate_policy_mistakes(tools: ToolRegistry) -> None:
    """Gate options that cannot work together are refused with the gate's path."""
    found = errors(
        """
name: g
steps:
  - id: a
    tool: data.echo
    approval: {approvers: ["role:ops"], stage: on_failure, allow: [approve], timeout: 1h, on_timeout: approve}
  - id: b
    tool: data.echo
    approval: {approvers: ["role:ops"], distinct_from: [a, c], auto_approve_if: "input.x ==="}
""",
        tools,
    )
    assert any(e.startswith("steps[0].approval: allow: ['approve'] not offered") for e in found)
    assert "steps[1].approval.distinct_from: 'c' is not a step with an approval gate" in found
    assert any(e.startswith("steps[1].approval.auto_approve_if: bad condition") for e in found)


def test_validate_input_lists_each_schema_error(tools: ToolRegistry) -> None:
    """A run input that breaks the schema reports each field with its path."""
    report = validate_definition(
        {
            "name": "i",
            "input": {
                "type": "object",
                "required": ["repo", "ref"],
                "properties": {
                    "repo": {"type": "string"},
                    "ref": {"type": "string"},
                    "n": {"type": "integer"},
                },
            },
            "steps": [{"id": "a", "tool": "data.echo"}],
        },
        tools,
    )
    assert report.definition is not None
    issues = [str(i) for i in validate_input(report.definition, {"repo": 3, "n": "x"})]
    assert "input: 'ref' is a required property" in issues
    assert "input.n: 'x' is not of type 'integer'" in issues
    assert "input.repo: 3 is not of type 'string'" in issues
    assert validate_input(report.definition, {"repo": "r", "ref": "main"}) == []


def test_secrets_must_be_declared_and_stay_out_of_output() -> None:
    """`${secret.NAME}` is accepted only for names in `secrets:`, in inputs, compensations and
    notifications; never in the run's output or summary, never in a condition."""
    raw = {
        "name": "s",
        "secrets": ["TOKEN"],
        "summary": "${secret.TOKEN}",
        "steps": [
            {
                "id": "a",
                "tool": "data.echo",
                "with": {"value": "${secret.TOKEN} ${secret.OTHER}"},
                "if": "secret.TOKEN == 'x'",
                "approval": {
                    "approvers": ["role:ops"],
                    "notify": {"tool": "data.echo", "with": {"value": "${secret.HOOK}"}},
                },
            }
        ],
        "output": {"leak": "${secret.TOKEN}"},
    }
    found = {str(i) for i in validate_definition(raw, default_registry(entry_points=False)).errors}
    assert found == {
        "steps[0].with.value: ${secret.OTHER}: secret 'OTHER' is not declared in `secrets:`",
        "steps[0].if: conditions cannot read secrets",
        "steps[0].approval.notify.with.value: ${secret.HOOK}: secret 'HOOK' is not declared in `secrets:`",
        "output.leak: ${secret.TOKEN}: the run's output.leak cannot hold secrets",
        "summary: ${secret.TOKEN}: the run's summary cannot hold secrets",
    }


def test_dynamic_step_fields_are_checked_with_their_paths() -> None:
    """for_each and plan definitions must be one reference; item, previous, output and iteration
    exist only where they make sense; repeat needs a bound; shapes that do not fit are named."""
    raw = {
        "name": "dyn",
        "input": {"type": "object", "properties": {"files": {"type": "array"}}},
        "steps": [
            {"id": "a", "tool": "data.echo", "with": {"value": "${item.x}"}},
            {"id": "b", "tool": "data.echo", "for_each": "files: ${input.files}"},
            {"id": "c", "tool": "data.echo", "repeat": {"until": "output.ok"}},
            {
                "id": "d",
                "tool": "data.echo",
                "with": {"p": "${previous.output}"},
                "check": {"condition": "iteration > 1"},
            },
            {
                "id": "e",
                "for_each": "${input.files}",
                "repeat": {"until": "item", "max_iterations": 2},
                "tool": "data.echo",
            },
            {"id": "f", "tool": "data.echo", "max_parallel": 3},
            {
                "id": "g",
                "for_each": "${input.files}",
                "tool": "data.echo",
                "approval": {"approvers": ["role:ops"], "stage": "on_failure", "per_item": False},
            },
            {"id": "h", "pipeline": {"definition": "not a ref", "allowed_tools": ["data.echo"]}},
            {
                "id": "i",
                "for_each": "${input.files}",
                "tool": "data.echo",
                "approval": {
                    "approvers": ["role:ops"],
                    "stage": "after",
                    "per_item": False,
                    "allow": ["approve", "retry", "modify"],
                },
            },
            {
                "id": "j",
                "pipeline": {"definition": "${input.plan}", "allowed_tools": ["data.echo"]},
                "approval": {"approvers": ["role:ops"], "allow": ["approve", "modify"]},
            },
            {
                "id": "k",
                "for_each": "${input.files}",
                "tool": "data.echo",
                "approval": {"approvers": ["role:ops"], "stage": "after", "allow": ["retry"]},
            },
        ],
    }
    found = {str(i) for i in validate_definition(raw, default_registry(entry_points=False)).errors}
    expected = {
        "steps[0].with.value: ${item.x}: `item` exists only in a for_each step (its inputs, condition, check, gate)",
        "steps[1].for_each: must be one reference like ${steps.<id>.output.<path>}, got 'files: ${input.files}'",
        "steps[2]: repeat needs max_iterations or timeout (or both)",
        "steps[3].with.p: ${previous.output}: `previous` exists only in a repeat step's inputs",
        "steps[3].check.condition: ${iteration}: `iteration` exists only in a repeat step (its inputs, check and until)",
        "steps[4]: a step cannot have both for_each and repeat (repeat a child pipeline instead)",
        "steps[5]: max_parallel on a step bounds its for_each items: it needs for_each",
        "steps[6]: approval.per_item: false does not go with stage on_failure (failures are per item)",
        "steps[7].pipeline.definition: must be one reference like ${steps.<id>.output.<path>}, got 'not a ref'",
        "steps[8]: approval.allow: ['retry', 'modify'] not offered at a gate over a whole for_each list (per_item: false): its subject cannot be patched or run again",
        "steps[9]: approval.allow: ['modify'] not offered at a plan's gate: its subject cannot be patched or run again",
    }
    assert expected <= found, "\n".join(sorted(found))
    # One gate per item may retry its item: nothing said of steps[10].
    assert not [e for e in found if e.startswith("steps[10]")]


def pinned(doc: str, tools: ToolRegistry) -> dict[str, bool | None]:
    report = validate_definition(yaml.safe_load(doc), tools)
    assert report.definition is not None, [str(e) for e in report.errors]
    return {s.id: s.local for s in report.definition.steps}


def test_local_is_pinned_from_the_tool_unless_the_step_needs_a_regular_activity(
    tools: ToolRegistry,
) -> None:
    """A local-capable tool runs locally by default; a long timeout, a task queue or a heartbeat
    keeps it regular; a tool that is not local-capable never is; the step's own word wins."""
    found = pinned(
        """
name: pins
steps:
  - {id: quick, tool: data.echo, with: {value: 1}}
  - {id: slow, tool: data.echo, timeout: 2m, with: {value: 1}}
  - {id: elsewhere, tool: data.echo, task_queue: big, with: {value: 1}}
  - {id: beating, tool: data.echo, heartbeat_timeout: 5s, with: {value: 1}}
  - {id: said_no, tool: data.echo, local: false, with: {value: 1}}
  - {id: short, tool: data.transform, timeout: 30s, with: {data: 1, expression: "@"}}
  - {id: http, tool: http.request, with: {url: "https://example.com"}}
""",
        tools,
    )
    assert found == {
        "quick": True,
        "slow": False,
        "elsewhere": False,
        "beating": False,
        "said_no": False,
        "short": True,
        "http": False,
    }


def test_a_step_asking_for_local_what_cannot_be_local_is_refused(tools: ToolRegistry) -> None:
    """Each reason a step cannot run locally is named at its path."""
    found = errors(
        """
name: bad-local
steps:
  - {id: http, tool: http.request, local: true, with: {url: "https://example.com"}}
  - {id: queue, tool: data.echo, local: true, task_queue: big, with: {value: 1}}
  - {id: beat, tool: data.echo, local: true, heartbeat_timeout: 5s, with: {value: 1}}
  - {id: long, tool: data.echo, local: true, timeout: 2m, total_timeout: 61s, with: {value: 1}}
""",
        tools,
    )
    assert any(
        e.startswith("steps[0].local: tool 'http.request' cannot run as a local") for e in found
    )
    assert any(e.startswith("steps[1].local:") and "task_queue" in e for e in found)
    assert any(e.startswith("steps[2].local:") and "heartbeat" in e for e in found)
    assert any(e.startswith("steps[3].timeout: a local activity runs at most 60s") for e in found)
    assert any(
        e.startswith("steps[3].total_timeout: a local activity runs at most 60s") for e in found
    )
    assert len(found) == 5, found


def test_malformed_secrets_list_is_an_error_not_a_crash(tools: ToolRegistry) -> None:
    """`secrets: [{}]` (an entry that is no name) is reported with its path; it was a
    TypeError, a 500 from `POST /workflows` and `POST /schedules`."""
    found = errors(
        {"name": "s", "secrets": [{}], "steps": [{"id": "a", "tool": "data.echo"}]}, tools
    )
    assert found and all(e.startswith("secrets[0]") for e in found), found
