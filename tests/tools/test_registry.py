"""The tool registry, the built-in listing and `python -m activities`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from activities import default_registry
from activities.context import ToolContext
from activities.registry import Tool, ToolError, ToolRegistry, tool

ROOT = Path(__file__).resolve().parents[2]
BUILTINS = {
    "http.request",
    "shell.run",
    "llm.chat",
    "notify.webhook",
    "notify.slack",
    "notify.email",
    "artifact.write",
    "artifact.read",
    "data.transform",
    "data.echo",
    "flow.fail",
    "openapi.validate",
    "package.inspect",
    "script.check",
}


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="What to echo.")


class EchoOutput(BaseModel):
    text: str = Field(description="The same text.")


def echo_tool(name: str, version: str) -> Tool:
    @tool(name, version)
    async def echo(inp: EchoInput, ctx: ToolContext) -> EchoOutput:
        """Echo the text back."""
        return EchoOutput(text=inp.text)

    return echo


def register_plugin(registry: ToolRegistry) -> None:
    """An entry-point target, as a third-party package would ship it."""
    registry.add(echo_tool("plugin.echo", "0.1.0"))


def test_resolve_orders_versions_when_minor_has_two_digits() -> None:
    """Versions compare as numbers: 1.10.0 is newer than 1.9.0."""
    reg = ToolRegistry(echo_tool("x.echo", v) for v in ("1.9.0", "1.10.0", "1.2.0"))
    assert reg.resolve("x.echo").version == "1.10.0"
    assert [t.version for t in reg.versions("x.echo")] == ["1.2.0", "1.9.0", "1.10.0"]


def test_resolve_picks_latest_in_major_when_major_given() -> None:
    """`name@1` is the newest 1.x, even when a 2.x exists; `name@1.9` the newest 1.9.x."""
    reg = ToolRegistry(echo_tool("x.echo", v) for v in ("1.9.0", "1.9.3", "1.10.0", "2.0.0"))
    assert reg.resolve("x.echo@1").version == "1.10.0"
    assert reg.resolve("x.echo@1.9").version == "1.9.3"
    assert reg.resolve("x.echo@2.0.0").version == "2.0.0"
    assert reg.resolve("x.echo").version == "2.0.0"


def test_resolve_names_known_tools_when_tool_is_unknown() -> None:
    """An unknown tool's error lists the tools that do exist."""
    reg = ToolRegistry([echo_tool("x.echo", "1.0.0")])
    with pytest.raises(ToolError, match=r"unknown tool 'x\.nope' \(known tools: x\.echo\)"):
        reg.resolve("x.nope")


def test_resolve_lists_versions_when_version_is_unknown() -> None:
    """A version that matches nothing is refused, listing the versions available."""
    reg = ToolRegistry(echo_tool("x.echo", v) for v in ("1.0.0", "1.1.0"))
    with pytest.raises(ToolError, match=r"no version matching '2' \(have: 1\.0\.0, 1\.1\.0\)"):
        reg.resolve("x.echo@2")


def test_add_refuses_tool_when_name_and_version_repeat() -> None:
    """The same name@version cannot be registered twice."""
    reg = ToolRegistry([echo_tool("x.echo", "1.0.0")])
    with pytest.raises(ToolError, match="registered twice"):
        reg.add(echo_tool("x.echo", "1.0.0"))


def test_default_registry_holds_builtins_when_entry_points_skipped() -> None:
    """Every built-in tool is registered at version 1.0.0."""
    reg = default_registry(entry_points=False)
    assert set(reg.names()) == BUILTINS
    assert all(reg.resolve(name).version == "1.0.0" for name in BUILTINS)


def test_default_registry_adds_plugins_when_entry_points_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tools from the `stepgate.tools` entry-point group join the built-ins."""
    ep = EntryPoint(
        name="echo", value="tests.tools.test_registry:register_plugin", group="stepgate.tools"
    )
    monkeypatch.setattr(
        "activities.registry.entry_points",
        lambda group: [ep] if group == "stepgate.tools" else [],
    )
    reg = default_registry()
    assert set(reg.names()) == BUILTINS | {"plugin.echo"}


def _fields(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property of a schema and of the models it defines."""
    models = [schema, *schema.get("$defs", {}).values()]
    return [(n, p) for m in models for n, p in m.get("properties", {}).items()]


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_schemas_document_fields_when_listed(name: str) -> None:
    """Built-in inputs forbid unknown fields, and every field of input and output is described."""
    [item] = [t for t in default_registry(entry_points=False).listing() if t["name"] == name]
    assert item["description"]
    assert item["input_schema"]["additionalProperties"] is False
    for schema in (item["input_schema"], item["output_schema"]):
        undocumented = [n for n, p in _fields(schema) if "description" not in p]
        assert undocumented == [], f"{name}: fields without description: {undocumented}"


def test_main_prints_listing_when_run_as_module() -> None:
    """`python -m activities` prints JSON with every tool's schemas; `--names` one line each."""
    run = [sys.executable, "-m", "activities", "--no-entry-points"]
    listing = json.loads(
        subprocess.run(run, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    )
    assert {t["name"] for t in listing} == BUILTINS
    assert all(
        {"version", "description", "input_schema", "output_schema"} <= t.keys() for t in listing
    )
    names = subprocess.run(
        [*run, "--names"], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert "shell.run@1.0.0\t" in names and len(names.splitlines()) == len(BUILTINS)
