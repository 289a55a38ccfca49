"""`data.transform`: reshape JSON with a JMESPath expression (a query language, so no code runs)."""

from __future__ import annotations

from typing import Any

from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import sends_to_fields, tool
from activities.tools._budget import BudgetExceeded, ExpressionInvalid, bounded_search
from activities.tools._masking import masked_failures

MAX_EXPRESSION_CHARS = 10_000


class DataTransformInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Any = Field(description="The JSON value to reshape.")
    expression: str = Field(
        min_length=1,
        max_length=MAX_EXPRESSION_CHARS,
        description="A JMESPath expression, e.g. `items[?ok].{id: id, n: name}`; it runs within "
        "a time and a size budget (STEPGATE_TRANSFORM_TIMEOUT_S, "
        "STEPGATE_TRANSFORM_MAX_OUTPUT_BYTES).",
    )


class DataTransformOutput(BaseModel):
    result: Any = Field(description="What the expression produced (null when nothing matched).")


@tool("data.transform", "1.0.0", risk="low", local=True, sends_to=sends_to_fields())
async def data_transform(inp: DataTransformInput, ctx: ToolContext) -> DataTransformOutput:
    """Reshape JSON data with a JMESPath expression, within a time and a size budget."""
    settings = ctx.settings
    with masked_failures(ctx.secret_values):
        try:
            result = await bounded_search(
                inp.expression,
                inp.data,
                settings.stepgate_transform_timeout_s,
                settings.stepgate_transform_max_output_bytes,
            )
        except ExpressionInvalid as err:
            raise fatal(
                f"JMESPath expression {inp.expression!r} does not parse: {err}",
                "InvalidExpression",
            ) from None
        except BudgetExceeded as err:
            # The same expression on the same data runs over again: retrying cannot help.
            raise fatal(f"data.transform stopped: {err}", "TransformBudgetExceeded") from None
        except RecursionError:
            raise fatal(
                "data.transform stopped: the expression or the data is nested too deeply",
                "TransformBudgetExceeded",
            ) from None
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


@tool("data.echo", "1.0.0", risk="low", local=True, sends_to=sends_to_fields())
async def data_echo(inp: DataEchoInput, ctx: ToolContext) -> DataEchoOutput:
    """Return a value unchanged: for constants, wiring and measuring the engine's own overhead."""
    return DataEchoOutput(value=inp.value)
