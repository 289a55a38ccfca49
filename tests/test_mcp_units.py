"""The MCP server's pure parts: tool names and bounds, refusals as tool errors, session counts."""

from __future__ import annotations

import re

import pytest

from api import cli
from api.mcp.backend import MAX_DETAILS, Pipeline, refusal
from api.mcp.catalog import (
    MAX_PIPELINE_TOOLS,
    MAX_SCHEMA_BYTES,
    MAX_TOOL_NAME_CHARS,
    pipeline_tools,
    tool_name,
)
from api.mcp.http import SessionCounts
from api.mcp.server import TAKEN

SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _pipeline(name: str, schema: dict[str, object] | None = None) -> Pipeline:
    return Pipeline(name, 1, "", schema if schema is not None else {"type": "object"})


def test_tool_names_are_safe_bounded_and_distinct() -> None:
    """A clean name is `run_<name>`; a dotted or over-long one gets a hash suffix, so names that
    clean up alike (`a.b`, `a_b`) never share a tool, and each fits every client's rules."""
    assert tool_name("deploy_application") == "run_deploy_application"
    names = {tool_name(n) for n in ("a.b", "a_b", "a-b", "x" * 200, "x" * 199 + "y")}
    assert len(names) == 5
    assert all(SAFE.match(n) and len(n) <= MAX_TOOL_NAME_CHARS for n in names), names
    assert tool_name("a.b") == tool_name("a.b")  # stable across lists


def test_pipeline_tools_are_bounded_and_never_shadow_a_fixed_tool() -> None:
    """At most MAX_PIPELINE_TOOLS pipelines become tools; one whose schema is over
    MAX_SCHEMA_BYTES is left to start_run; a pipeline whose tool name a fixed tool holds is
    left out; a schema without a root type says it is an object."""
    many = [_pipeline(f"p{i:04d}") for i in range(MAX_PIPELINE_TOOLS + 50)]
    assert len(pipeline_tools(many, TAKEN)) == MAX_PIPELINE_TOOLS
    huge = {"type": "object", "description": "x" * MAX_SCHEMA_BYTES}
    assert pipeline_tools([_pipeline("big", huge)], TAKEN) == {}
    assert pipeline_tools([_pipeline("ok")], {"run_ok"}) == {}
    typed = pipeline_tools([_pipeline("loose", {"properties": {}})], TAKEN)
    assert typed["run_loose"].tool.input_schema == {"properties": {}, "type": "object"}


def test_a_refusal_names_each_field_as_the_tool_takes_it() -> None:
    """The route's error becomes the tool's: code, status and message, then each field (the
    route's `body.`/`path.`/`query.` prefix dropped) and why, at most MAX_DETAILS of them."""
    details = [{"path": f"body.input.f{i}", "message": "bad"} for i in range(MAX_DETAILS + 5)]
    err = str(refusal(422, "invalid", "the request is not valid", details))
    lines = err.splitlines()
    assert lines[0] == "invalid (HTTP 422): the request is not valid"
    assert lines[1] == "- input.f0: bad"
    assert lines[-1] == "- ... and 5 more"
    assert "- workflow_id: too long" in str(
        refusal(422, "invalid", "no", [{"path": "path.workflow_id", "message": "too long"}])
    )


def test_session_counts_forget_idle_and_ended_sessions() -> None:
    """A principal's sessions count while used within the idle time; an ended one at once."""
    now = [0.0]
    counts = SessionCounts(60, clock=lambda: now[0])
    counts.used("bob", "s1")
    counts.used("bob", "s2")
    assert (counts.live("bob"), counts.live("alice")) == (2, 0)
    counts.ended("bob", "s1")
    assert counts.live("bob") == 1
    now[0] = 61
    assert counts.live("bob") == 0


def test_stepgate_mcp_without_a_key_stops_at_once_saying_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`stepgate mcp` without STEPGATE_API_KEY exits 2 naming the variable, serving nothing."""
    assert cli.main(["mcp"]) == 2
    assert "STEPGATE_API_KEY" in capsys.readouterr().err
