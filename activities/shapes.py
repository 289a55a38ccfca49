"""Values checked against JSON Schemas a definition declares (a step's `output_schema`, the
`response_format` of `llm.chat`): the first mismatches as one line of text, each with its path."""

from __future__ import annotations

import asyncio
from typing import Any

from activities.jsonschema_safe import describe, schema_issues, value_issues

# Mismatches named in one message: enough to repair the value, bounded for history (each is at
# most jsonschema_safe.MAX_MESSAGE_CHARS).
MAX_SHOWN = 5


def issue_text(issues: list[tuple[str, str]]) -> str:
    """`output.items[2].id: 5 is not of type 'string'; ...`, at most MAX_SHOWN of them."""
    shown = "; ".join(
        f"{path}: {message}" if path else message for path, message in issues[:MAX_SHOWN]
    )
    return shown + (" (and more)" if len(issues) > MAX_SHOWN else "")


def unsafe(schema: Any, prefix: str) -> str:
    """Why `schema` cannot be used (jsonschema_safe.schema_issues), or an empty text."""
    return issue_text(describe(schema_issues(schema), prefix))


def mismatches(schema: dict[str, Any], value: Any, prefix: str) -> str:
    """Where `value` breaks `schema` (which passed `unsafe`), or an empty text when it fits."""
    return issue_text(describe(value_issues(schema, value, MAX_SHOWN + 1), prefix))


async def check(
    schema: dict[str, Any], value: Any, schema_at: str, value_at: str
) -> tuple[str, str]:
    """(why the schema is unsafe, where the value breaks it): on a worker thread, since one check
    may take up to jsonschema_safe.MAX_WORK keyword evaluations. The schema is checked again even
    when validation passed it: that costs little, and a definition can reach Temporal another way."""
    return await asyncio.to_thread(_check, schema, value, schema_at, value_at)


def _check(schema: dict[str, Any], value: Any, schema_at: str, value_at: str) -> tuple[str, str]:
    problem = unsafe(schema, schema_at)
    return (problem, "") if problem else ("", mismatches(schema, value, value_at))
