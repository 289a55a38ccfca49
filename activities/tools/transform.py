"""`data.transform`: reshape JSON with a JMESPath expression (a query language, so no code runs)."""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import tool


class DataTransformInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Any = Field(description="The JSON value to reshape.")
    expression: str = Field(
        min_length=1, description="A JMESPath expression, e.g. `items[?ok].{id: id, n: name}`."
    )


class DataTransformOutput(BaseModel):
    result: Any = Field(description="What the expression produced (null when nothing matched).")


@tool("data.transform", "1.0.0")
async def data_transform(inp: DataTransformInput, ctx: ToolContext) -> DataTransformOutput:
    """Reshape JSON data with a JMESPath expression."""
    try:
        compiled = jmespath.compile(inp.expression)
    except JMESPathError as err:
        raise fatal(
            f"JMESPath expression {inp.expression!r} does not parse: {err}", "InvalidExpression"
        ) from None
    try:
        result = compiled.search(inp.data)
    except JMESPathError as err:
        # Type errors (e.g. sum() of strings) depend on the data, which a retry does not change.
        raise fatal(
            f"JMESPath expression {inp.expression!r} failed on this data: {err}",
            "TransformFailed",
        ) from None
    return DataTransformOutput(result=result)


class DataEchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = Field(None, description="Any JSON value; returned unchanged.")


class DataEchoOutput(BaseModel):
    value: Any = Field(description="The input value, unchanged.")


@tool("data.echo", "1.0.0")
async def data_echo(inp: DataEchoInput, ctx: ToolContext) -> DataEchoOutput:
    """Return a value unchanged: for constants, wiring and measuring the engine's own overhead."""
    return DataEchoOutput(value=inp.value)
