"""What the memory keeps of a governed run: what its status shows. The context and the plan
have the values of sensitive keys (`password`, `token`, `Authorization`, ...) masked as the
status masks them, before the pattern is stored and before its words are indexed, so a search
neither returns such a value nor finds a run by it."""

from __future__ import annotations

from activities.masking import mask, mask_json_text
from activities.models import MemoryPattern


def redacted(pattern: MemoryPattern) -> MemoryPattern:
    """`pattern` with its context summary and plan masked like the run's status."""
    summary = mask_json_text(pattern.context_summary)
    plan = mask(pattern.plan)
    if summary == pattern.context_summary and plan == pattern.plan:
        return pattern
    return pattern.model_copy(update={"context_summary": summary, "plan": plan})
