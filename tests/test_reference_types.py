"""Validation of handoffs between steps: output schemas, and references whose JSON type can
never fit the tool input field they fill (no server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from activities import default_registry
from activities.context import ToolContext
from activities.jsonschema_safe import MAX_WORK
from activities.registry import ToolRegistry, tool
from workflows.language.definition import StepSpec
from workflows.language.reftypes import MAX_SCHEMA_WORK, MAX_TYPE_WORK, check_handoffs
from workflows.language.schema_types import TypeWalk
from workflows.language.validation import validate_definition


@pytest.fixture(scope="module")
def tools() -> ToolRegistry:
    return default_registry(entry_points=False)


def errors(doc: str | dict[str, Any], tools: ToolRegistry) -> list[str]:
    raw = yaml.safe_load(doc) if isinstance(doc, str) else doc
    return [str(e) for e in validate_definition(raw, tools).errors]


def test_validate_reports_object_where_string_is_taken(tools: ToolRegistry) -> None:
    """An object declared by a step's output_schema, put where llm.chat takes a string, is
    reported with its path, where the type is known from and what the field takes; a message's
    content takes any JSON value (sent as its JSON text), so the same object there is fine."""
    found = errors(
        """
name: handoff
steps:
  - id: api_spec
    tool: llm.chat
    with: {messages: [{role: user, content: "Write the spec"}]}
    output_schema: {type: object, required: [parsed], properties: {parsed: {type: object}}}
  - id: review
    needs: [api_spec]
    tool: llm.chat
    with:
      tool_choice: "${steps.api_spec.output.parsed}"
      messages:
        - {role: system, content: "Review this spec"}
        - {role: user, content: "${steps.api_spec.output.parsed}"}
""",
        tools,
    )
    assert found == [
        "steps[1].with.tool_choice: ${steps.api_spec.output.parsed} is an object "
        "(output_schema of 'api_spec'), but llm.chat input tool_choice takes a string"
    ]


def test_validate_reports_llm_reply_types_from_response_format(tools: ToolRegistry) -> None:
    """llm.chat's `output.json` (and the deprecated `parsed`) has the response_format schema."""
    found = errors(
        """
name: handoff
steps:
  - id: plan
    tool: llm.chat
    with:
      messages: [{role: user, content: "Plan"}]
      response_format:
        json_schema:
          type: object
          properties: {steps: {type: array, items: {type: object}}, title: {type: string}}
  - id: act
    needs: [plan]
    tool: http.request
    with:
      url: "${steps.plan.output.json.steps.0}"
      body: "${steps.plan.output.parsed.steps}"
      headers: "${steps.plan.output.json.title}"
""",
        tools,
    )
    source = "(response_format.json_schema of 'plan')"
    assert found == [
        f"steps[1].with.url: ${{steps.plan.output.json.steps.0}} is an object {source}, "
        "but http.request input url takes a string",
        f"steps[1].with.body: ${{steps.plan.output.parsed.steps}} is an array {source}, "
        "but http.request input body takes a string",
        f"steps[1].with.headers: ${{steps.plan.output.json.title}} is a string {source}, "
        "but http.request input headers takes an object",
    ]


def test_validate_reports_tool_output_types_in_step_and_compensate(tools: ToolRegistry) -> None:
    """Without output_schema the source's type comes from its tool's output model, and the
    compensation's `with:` is checked against its own tool."""
    found = errors(
        """
name: handoff
steps:
  - id: fetch
    tool: http.request
    with: {url: "https://example.com"}
  - id: deploy
    needs: [fetch]
    tool: shell.run
    with: {argv: "${steps.fetch.output.headers}"}
    compensate: {tool: http.request, with: {url: "${steps.fetch.output.status}"}}
""",
        tools,
    )
    assert found == [
        "steps[1].with.argv: ${steps.fetch.output.headers} is an object (http.request@1.0.0 "
        "output), but shell.run input argv takes an array",
        "steps[1].compensate.with.url: ${steps.fetch.output.status} is an integer "
        "(http.request@1.0.0 output), but http.request input url takes a string",
    ]


def test_validate_accepts_references_the_tool_would_convert_or_fit(tools: ToolRegistry) -> None:
    """Values pydantic converts (a string into a number, an integer into a boolean), values that
    may be null where null is taken, and matching types are not reported."""
    found = errors(
        """
name: fits
steps:
  - id: src
    tool: data.echo
    output_schema:
      type: object
      properties:
        value:
          type: object
          properties:
            seconds: {type: string}
            flag: {type: integer}
            maybe: {type: [object, "null"]}
            names: {type: array, items: {type: string}}
  - id: use
    needs: [src]
    tool: http.request
    with:
      url: "${steps.src.output.value.names.0}"
      timeout_s: "${steps.src.output.value.seconds}"
      follow_redirects: "${steps.src.output.value.flag}"
      max_body_bytes: "${steps.src.output.value.flag}"
      json: "${steps.src.output.value.maybe}"
      expected_status: "${steps.src.output.value.names}"
""",
        tools,
    )
    assert found == []


def test_validate_says_nothing_when_a_type_is_unknown(tools: ToolRegistry) -> None:
    """Fields the schemas do not describe (Any, undeclared properties, open targets), embedded
    references and child pipelines without output_schema are never guessed at."""
    found = errors(
        """
name: unknown
steps:
  - id: echo
    tool: data.echo
    with: {value: {a: 1}}
  - id: loose
    tool: data.echo
    output_schema: {type: object, properties: {value: {type: object}}}
  - id: child
    pipeline: other
  - id: use
    needs: [echo, loose, child]
    tool: llm.chat
    with:
      messages:
        - {role: user, content: "${steps.echo.output.value}"}
        - {role: user, content: "${steps.loose.output.value.anything}"}
        - {role: user, content: "text ${steps.echo.output.value}"}
        - {role: user, content: "${steps.child.output}"}
      tools: [{name: f, parameters: "${steps.loose.output.value}"}]
""",
        tools,
    )
    assert found == []


def test_validate_types_for_each_outputs_as_lists_of_item_outputs(tools: ToolRegistry) -> None:
    """A for_each step's output is the list of its items' outputs (null for an item that failed
    or was skipped); a repeat step's is its last iteration's, typed as any iteration's."""
    found = errors(
        """
name: fanout
input: {type: object, properties: {urls: {type: array}}}
steps:
  - id: each
    tool: http.request
    for_each: "${input.urls}"
    with: {url: "https://example.com"}
  - id: ask
    tool: llm.chat
    for_each: "${input.urls}"
    with:
      messages: [{role: user, content: "?"}]
      response_format: {json_schema: {type: object, properties: {n: {type: integer}}}}
  - id: poll
    tool: http.request
    with: {url: "https://example.com"}
    repeat: {until: "output.status == 200", max_iterations: 3}
  - id: use
    needs: [each, ask, poll]
    tool: http.request
    with:
      url: "${steps.each.output}"
      method: "${steps.each.output.0.status}"
      headers: "${steps.ask.output.1.json.n}"
      json: "${steps.each.output.json}"
      timeout_s: "${steps.ask.output.0.json.n}"
      query: "${steps.poll.output.status}"
""",
        tools,
    )
    item = "http.request@1.0.0 output of each for_each item"
    assert found == [
        "steps[3].with.url: ${steps.each.output} is an array (for_each step 'each'), but "
        "http.request input url takes a string",
        f"steps[3].with.method: ${{steps.each.output.0.status}} is an integer or null ({item}), "
        "but http.request input method takes a string",
        "steps[3].with.headers: ${steps.ask.output.1.json.n} is an integer or null "
        "(response_format.json_schema of 'ask' of each for_each item), but http.request input "
        "headers takes an object",
        "steps[3].with.query: ${steps.poll.output.status} is an integer (http.request@1.0.0 "
        "output), but http.request input query takes an object",
    ]


def test_validate_follows_refs_anyof_and_items_in_output_schema(tools: ToolRegistry) -> None:
    """`$ref`s, `anyOf` branches and array items of an output_schema are followed; a source
    that may be an object or an array is named as both."""
    found = errors(
        """
name: walk
steps:
  - id: src
    tool: data.echo
    output_schema:
      $defs:
        item: {anyOf: [{type: object}, {type: array}]}
      type: object
      properties:
        value: {type: object, properties: {list: {type: array, items: {$ref: "#/$defs/item"}}}}
  - id: use
    needs: [src]
    tool: http.request
    with: {url: "${steps.src.output.value.list.3}"}
""",
        tools,
    )
    assert found == [
        "steps[1].with.url: ${steps.src.output.value.list.3} is an object or an array "
        "(output_schema of 'src'), but http.request input url takes a string"
    ]


def test_validate_reports_unsafe_output_and_reply_schemas(tools: ToolRegistry) -> None:
    """An output_schema or a response_format schema that jsonschema_safe refuses is reported
    with its path inside the step, and is not used to type references."""
    found = errors(
        """
name: unsafe
steps:
  - id: a
    tool: data.echo
    output_schema: {type: object, properties: {value: {type: string, pattern: "(a)\\\\1"}}}
  - id: b
    tool: llm.chat
    with:
      messages: [{role: user, content: hi}]
      response_format: {json_schema: {$ref: "https://example.com/schema.json"}}
  - id: c
    needs: [a]
    tool: http.request
    with: {url: "https://example.com", headers: "${steps.a.output.value}"}
""",
        tools,
    )
    assert len(found) == 2, found
    assert found[0].startswith("steps[0].output_schema.properties.value.pattern: pattern not")
    assert found[1].startswith(
        "steps[1].with.response_format.json_schema.$ref: only local references"
    )


def test_validate_output_schemas_share_one_work_budget(tools: ToolRegistry) -> None:
    """Output schemas that each take the whole per-check budget cost one budget together: the
    first is refused for its own cost, the rest because the definition's budget is spent."""
    levels = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(25)
    }
    costly = {"$ref": "#/$defs/d0", "$defs": {**levels, "d25": {"type": "string"}}}
    steps = [{"id": f"s{i}", "tool": "data.echo", "output_schema": costly} for i in range(20)]
    found = errors({"name": "costly", "steps": steps}, tools)
    assert (
        found[0]
        == f"steps[0].output_schema: checking the value against the schema takes more than {MAX_WORK} steps"
    )
    assert found[1:] == [
        f"steps[{i}].output_schema: checking the schemas of this document takes more than "
        f"{MAX_SCHEMA_WORK} steps"
        for i in range(1, 20)
    ]


def branching_schema() -> dict[str, Any]:
    """12 levels of 8 branches each: 8^12 paths to a type, within MAX_HOPS of the root. Every
    probe (null, {}, []) fits the first branch at once, so jsonschema_safe accepts it."""
    levels = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 8} for i in range(12)}
    leaf = {"type": ["object", "array", "null"]}
    return {"$ref": "#/$defs/d0", "$defs": {**levels, "d12": leaf}}


def test_type_walk_stops_at_budget() -> None:
    """A walk over a schema with 8^12 paths gives up, unknown, once its budget is spent."""
    schema = branching_schema()
    walk = TypeWalk(schema, [MAX_TYPE_WORK])
    assert walk.types_at(schema, ()) is None
    assert walk.budget[0] < 0


def test_check_handoffs_leaves_reference_unchecked_past_budget(tools: ToolRegistry) -> None:
    """A reference into a schema too costly to walk is left unchecked rather than reported, and
    the schema itself is accepted."""
    schema = branching_schema()
    src = StepSpec.model_validate({"id": "src", "tool": "data.echo", "output_schema": schema})
    use = StepSpec.model_validate(
        {
            "id": "use",
            "tool": "http.request",
            "needs": ["src"],
            "with": {"url": "${steps.src.output}"},
        }
    )
    assert check_handoffs([(0, src), (1, use)], tools) == []


class OddInput(BaseModel):
    hook: Callable[[], None] | None = None
    url: str = ""


class OddOutput(BaseModel):
    done: bool = True


@tool("test.odd", "1.0.0")
async def odd(inp: OddInput, ctx: ToolContext) -> OddOutput:
    """A third-party tool whose input model JSON Schema cannot describe."""
    return OddOutput()


def test_validate_skips_tool_whose_model_has_no_json_schema(tools: ToolRegistry) -> None:
    """A tool input model pydantic cannot turn into JSON Schema leaves its references unchecked
    instead of failing the validation."""
    registry = ToolRegistry([*(tools.versions(n)[-1] for n in tools.names()), odd])
    found = errors(
        """
name: odd
steps:
  - id: fetch
    tool: http.request
    with: {url: "https://example.com"}
  - id: use
    needs: [fetch]
    tool: test.odd
    with: {url: "${steps.fetch.output.headers}"}
""",
        registry,
    )
    assert found == []
