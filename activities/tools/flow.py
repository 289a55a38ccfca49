"""`flow.fail`: fail a step, and so the run, on purpose, with a message of the pipeline's own."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import sends_to_fields, tool

# As long as a definition's texts (workflows/language/limits.py MAX_TEXT_CHARS): the message ends up in
# the run's status and history.
MAX_MESSAGE_CHARS = 4_000


class FlowFailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="Why the run stops: the step's error, and the run's.",
    )
    details: dict[str, Any] | None = Field(
        None, description="Data kept with the failure in history (the Web UI shows it)."
    )


class FlowFailOutput(BaseModel):
    """Never produced: the step always fails."""


@tool("flow.fail", "1.0.0", risk="low", local=True, sends_to=sends_to_fields())
async def flow_fail(inp: FlowFailInput, ctx: ToolContext) -> FlowFailOutput:
    """Fail the step without a retry (FlowFailed); unless it says `on_error: continue` or an
    on_failure gate decides otherwise, the run fails and compensates what succeeded."""
    if inp.details is not None:
        raise fatal(inp.message, "FlowFailed", details=inp.details)
    raise fatal(inp.message, "FlowFailed")
