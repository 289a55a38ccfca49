"""Every catalog pipeline as a tool of its own, typed by the pipeline's input schema.

A tool's name is `run_` and the pipeline's name, in the characters every MCP client takes
(letters, digits, `_`, `-`) and at most MAX_TOOL_NAME_CHARS long: a name that had to be changed
or cut gets a suffix from the hash of the original, so two pipelines never share a tool. The
list is read from the catalog at every `tools/list`, so it follows reloads.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from mcp_types import Tool, ToolAnnotations

from api.mcp.backend import Pipeline

PREFIX = "run_"
# Some clients take at most 64 characters and no dots (a model provider's own limit).
MAX_TOOL_NAME_CHARS = 64
HASH_CHARS = 8
# What the list offers at most: pipelines beyond it, or whose input schema is larger than
# MAX_SCHEMA_BYTES of JSON, are started with `start_run` instead (list_pipelines names them).
MAX_PIPELINE_TOOLS = 200
MAX_SCHEMA_BYTES = 32_768
MAX_DESCRIPTION_CHARS = 1_000
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(pipeline: str) -> str:
    """`run_<name>` in safe characters and bounded; changed or cut names carry a hash suffix."""
    clean = _UNSAFE.sub("_", pipeline)
    name = PREFIX + clean
    if clean == pipeline and len(name) <= MAX_TOOL_NAME_CHARS:
        return name
    suffix = hashlib.sha256(pipeline.encode()).hexdigest()[:HASH_CHARS]
    return f"{name[: MAX_TOOL_NAME_CHARS - HASH_CHARS - 1]}_{suffix}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION_CHARS else text[: MAX_DESCRIPTION_CHARS - 1] + "…"


def _object_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A run input is always an object (the REST route takes `input` as one); MCP wants the root
    of an input schema to say so."""
    return schema if schema.get("type") == "object" else {**schema, "type": "object"}


@dataclass(frozen=True)
class PipelineTool:
    pipeline: Pipeline
    tool: Tool


def pipeline_tools(pipelines: list[Pipeline], taken: set[str]) -> dict[str, PipelineTool]:
    """Tool name -> the pipeline it starts, at most MAX_PIPELINE_TOOLS, in name order; names in
    `taken` (the fixed tools) and repeated names are left out, never shadowed."""
    tools: dict[str, PipelineTool] = {}
    for p in sorted(pipelines, key=lambda p: p.name):
        if len(tools) >= MAX_PIPELINE_TOOLS:
            break
        name = tool_name(p.name)
        schema = _object_schema(p.input_schema)
        if name in taken or name in tools or len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
            continue
        tools[name] = PipelineTool(
            p,
            Tool(
                name=name,
                title=f"Run {p.name}",
                description=_clip(
                    f"Start a run of the catalog pipeline `{p.name}` (version {p.version}) with "
                    f"these arguments as its input; answers the run's id. "
                    f"{p.description}".strip()
                ),
                input_schema=schema,
                annotations=ToolAnnotations(destructive_hint=True, open_world_hint=True),
            ),
        )
    return tools
