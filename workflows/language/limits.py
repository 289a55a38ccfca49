"""Hard limits on what a definition may ask for, checked at validation with the offending path.

One place for the numbers, so the validator, the API and the engine agree. Each is far above what
a real pipeline needs and well below what would stall the API or wedge a run in Temporal.
"""

from __future__ import annotations

from datetime import timedelta

# The document parser's limits, named here too so that this module is the one table: nesting of
# a definition or any JSON value in it, and characters of a number (in a document or a condition).
from activities.documents import MAX_DEPTH as MAX_DEPTH
from activities.documents import MAX_NUMBER_CHARS as MAX_NUMBER_CHARS

# Steps in one definition. The validator's graph checks are quadratic at worst, and each step is
# an activity: Temporal fails a workflow task that schedules more than 2,000 pending activities.
MAX_STEPS = 500
# Steps running at once; with gates and compensation on top this stays far under Temporal's 2,000.
MAX_PARALLEL = MAX_STEPS
# Items one for_each step runs over (the run continues as new as its history grows).
MAX_ITEMS = 1_000
# JSON bytes of a for_each list read back from a step output kept in the artifact store: the list
# enters history (each item is a value in the run's state), so a quarter of what a step may keep.
MAX_LOADED_LIST_BYTES = 262_144
# Iterations of one repeat step.
MAX_ITERATIONS = 1_000
# `needs` of one step.
MAX_NEEDS = MAX_STEPS

# Any duration (timeouts, intervals, gate timers): a longer timer is a run nobody will see finish,
# and Python's timedelta overflows near 10^9 days.
MAX_DURATION = timedelta(days=365)
# Characters of a duration as written (`1h30m`), so parsing one is cheap.
MAX_DURATION_CHARS = 32

# A step's `max_output_bytes`: an output kept in history must fit Temporal's payload limit
# (2 MiB by default, with the rest of the event around it).
MAX_OUTPUT_BYTES = 1_048_576
# A local activity runs inside the workflow task: one attempt at most this long (a step that
# needs longer is a regular activity), and this long when the step sets no timeout.
MAX_LOCAL_TIMEOUT = timedelta(seconds=60)
LOCAL_TIMEOUT = timedelta(seconds=10)

# Retry attempts of one step (pydantic already bounds them; named here for the table in README).
MAX_ATTEMPTS = 100

# Approval gates: principals named, votes asked for.
MAX_APPROVERS = 100
MAX_QUORUM = 100

# Identifiers: step ids (gate ids are built from them), names, task queues, principals, tool names.
MAX_ID_CHARS = 100
# A gate id is a step id, `<step>.<index>` or `<step>.call-<n>`.
MAX_GATE_ID_CHARS = MAX_ID_CHARS + 20
MAX_NAME_CHARS = 200
# Free text: a definition's description, a gate's review text, a summary template.
MAX_TEXT_CHARS = 4_000
# Conditions (`if:`, `auto_approve_if:`).
MAX_EXPRESSION_CHARS = 2_000
# Nesting of a condition: parentheses, `not`, lists, function calls and chains of and/or.
MAX_EXPRESSION_DEPTH = 64

# References `${...}`: dotted segments, and digits of a list index (`items.0`).
MAX_REF_SEGMENTS = 32
MAX_INDEX_DIGITS = 6

# Names listed in an error message ("catalog has: ..."): the first few of a long list.
MAX_NAMES_SHOWN = 20


def some_names(names: list[str]) -> str:
    """`a, b, c`, or the first MAX_NAMES_SHOWN and how many more; `none` for no names."""
    if not names:
        return "none"
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    more = len(names) - MAX_NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
