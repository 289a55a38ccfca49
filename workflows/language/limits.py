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
# Steps and for_each items one run may hold, counting each for_each step at MAX_ITEMS (two
# fan-outs of a thousand items fit, three do not): a run's state, a few hundred bytes a unit
# besides its inline budget, must fit what it continues as new with.
MAX_UNITS = 3_000
# What a run carries into its next run when it continues as new (definition, snapshots and
# state), and what its output may take: Temporal refuses payloads over 2 MiB, so a run past these
# fails, saying so, instead of failing its workflow task for ever.
MAX_CARRY_BYTES = 1_572_864
MAX_RUN_OUTPUT_BYTES = 1_048_576
# JSON bytes of a for_each list read back from a step output kept in the artifact store: the list
# enters history (each item is a value in the run's state), so a quarter of what a step may keep.
MAX_LOADED_LIST_BYTES = 262_144
# Iterations of one repeat step; also the bound of a loop that names none.
MAX_ITERATIONS = 1_000
# Tool calls and child runs one run keeps out at once, far below Temporal's 2,000 pending
# activities (and 2,000 pending children).
MAX_IN_FLIGHT = 500
# Bytes of step outputs and previews one run keeps in its state (its history, its status, the
# input it continues as new with, at most 2 MiB): once they are spent, a call's output over
# MIN_INLINE_BYTES goes to the artifact store, as an output over `max_output_bytes` always does.
RUN_INLINE_BYTES = 1_048_576
MIN_INLINE_BYTES = 256
# What a call may keep inline when its step sets no `max_output_bytes` (the worker's default,
# STEPGATE_MAX_OUTPUT_BYTES, must not be larger for the budget to hold).
DEFAULT_INLINE_BYTES = 65_536
# A call's output preview in the state: PREVIEW_BYTES while the run's budget lasts, then
# MIN_PREVIEW_BYTES.
PREVIEW_BYTES = 2_048
MIN_PREVIEW_BYTES = 128
# Local calls (their results are recorded with the workflow task that made them, in one message
# of at most 4 MiB) are made at most LOCAL_CALLS_PER_TASK per task, each kept to
# LOCAL_INLINE_BYTES inline and MIN_PREVIEW_BYTES of preview; the next ones run as regular
# activities. 100 x (8 KiB + 128 B + markers) stays under 1 MiB.
LOCAL_CALLS_PER_TASK = 100
LOCAL_INLINE_BYTES = 8_192
# Gate notifications one run has out at once (the rest wait their turn): with MAX_IN_FLIGHT calls
# and a child's signals, a run stays far under Temporal's 2,000 pending activities.
NOTIFY_IN_FLIGHT = 50
# The wait between iterations of a loop that names no `every`: a condition that never holds must
# not spin (thousands of iterations a second filled history and held a worker's CPU).
REPEAT_FLOOR = timedelta(seconds=1)
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


# Agent steps (workflows/rules/agent.py). Tools one agent may offer; model turns of one loop
# (a step's max_turns, and its default); calls the model may ask for in one turn (more are
# refused, each told to the model); replies sent back for not following output_schema.
MAX_AGENT_TOOLS = 32
MAX_AGENT_TURNS = 500
DEFAULT_AGENT_TURNS = 20
MAX_CALLS_PER_TURN = 16
# Calls one agent step may ask for in all: each keeps a record in the run's state (its arguments
# only until the turn after its own ends: the transcript in the artifact store keeps them).
MAX_AGENT_CALLS = 500
MAX_REPLY_REPAIRS = 2
# What the run keeps inline of one tool call's result (a larger one goes to the artifact store
# and the model reads it from there), and of one model reply (a larger one fails the step).
AGENT_RESULT_INLINE_BYTES = 8_192
AGENT_REPLY_INLINE_BYTES = 65_536
# Bytes of the conversation kept inline in the run's state and sent through history with each
# turn: past it, the oldest messages move to the artifact store as a chunk the model call reads.
AGENT_WINDOW_BYTES = 49_152
# Standing grants: how long one may last, how many calls it may cover, how many a run keeps.
MAX_GRANT_DURATION = timedelta(hours=24)
MAX_GRANT_CALLS = 1_000
MAX_GRANTS = 100

# A gate's `form:` (workflows/language/forms.py): fields one form asks for, characters of a
# field's name (a reference reads it: `${steps.<id>.gate.response.<field>}`), of a title and of a
# description, choices one enum field offers, characters of a text answer (a field's maxLength,
# and the bound of one that names none), and bytes of the whole form's JSON (every view of an
# open gate carries it: 50 gates in the inbox memo must stay far under Temporal's 2 MiB).
# A response (the answers to one form) takes at most MAX_RESPONSE_BYTES of JSON: a vote, an audit
# entry and the gate keep it, and a view of any of them shows it whole.
MAX_FORM_FIELDS = 32
MAX_FORM_FIELD_CHARS = 64
MAX_FORM_TITLE_CHARS = 200
MAX_FORM_DESCRIPTION_CHARS = 1_000
MAX_FORM_OPTIONS = 100
MAX_FORM_STRING_CHARS = 2_000
MAX_RESPONSE_BYTES = 8_192
MAX_FORM_BYTES = 8_192
