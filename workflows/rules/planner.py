"""What the LLM planner is asked: the request, the context, the tools a plan may use, the most
similar past runs and, on a repair, the plan before and every error in it. Pure text building."""

from __future__ import annotations

import json
from typing import Any

from activities.models import MemoryHit
from workflows.rules.governed import SCHEMA_CHARS, ToolInfo

# The shape a plan must have (Stepgate's definition format, the parts a planner needs).
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "steps"],
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "input": {"type": "object"},
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "tool"],
                "properties": {
                    "id": {"type": "string"},
                    "tool": {"type": "string"},
                    "with": {"type": "object"},
                    "needs": {"type": "array", "items": {"type": "string"}},
                    "if": {"type": "string"},
                },
            },
        },
        "output": {},
    },
}
PAST_RUNS = 3
PAST_PLAN_CHARS = 1_500

SYSTEM = (
    "You plan Stepgate pipelines. Answer with one JSON definition: a `name`, an `input` JSON "
    "Schema of the context you will be given, and `steps`, each with an `id`, a `tool` from the "
    "list, its input under `with` (refer to the context as ${input.<field>} and to an earlier "
    "step's output as ${steps.<id>.output.<field>}, naming that step in `needs`), and an optional "
    "`output`. Use only the tools listed; prefer the least risky tools that do the job. People "
    "review every plan by its risk before it runs; past runs show how similar plans went."
)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tools_text(tools: list[ToolInfo]) -> str:
    return "\n".join(
        f"- {t.name}@{t.version} ({t.risk} risk): {t.description}\n  input: "
        + _clip(json.dumps(t.input_schema, sort_keys=True), SCHEMA_CHARS)
        for t in tools
    )


def past_text(similar: list[MemoryHit]) -> str:
    if not similar:
        return "(none)"
    lines = []
    for hit in similar[:PAST_RUNS]:
        p = hit.pattern
        lines.append(
            f"- request: {p.request}\n  tier {p.tier}, decision {p.decision}, outcome {p.outcome}"
            + (f", comments: {' | '.join(p.comments)}" if p.comments else "")
            + f"\n  plan: {_clip(json.dumps(p.plan, sort_keys=True), PAST_PLAN_CHARS)}"
        )
    return "\n".join(lines)


def messages(
    request: str,
    context: dict[str, Any],
    tools: list[ToolInfo],
    similar: list[MemoryHit],
    previous: Any = None,
    errors: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The conversation for one planning attempt (a repair shows the last plan and its errors)."""
    user = (
        f"Request:\n{request}\n\nContext (the plan's input):\n{json.dumps(context, sort_keys=True)}"
        f"\n\nTools you may use:\n{tools_text(tools)}\n\nSimilar past runs:\n{past_text(similar)}"
    )
    out = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    if errors:
        out.append({"role": "assistant", "content": json.dumps(previous, sort_keys=True)})
        out.append(
            {
                "role": "user",
                "content": "That plan is not valid. Fix every error and answer with the whole "
                "plan again:\n" + "\n".join(f"- {e}" for e in errors),
            }
        )
    return out
