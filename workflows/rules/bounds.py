"""How much of a run the outside is shown at once. Temporal refuses a query's answer over
`limit.blobSize.error` (2 MiB by default: "Blob data size exceeds limit"), so the status and every
page of a run's lists are bounded whatever the run holds: each field of a view by `Bounds` (free
text, previews, values shown whole, votes, a step's latest items), and each list of views by the
bytes of its JSON, measured as it is filled (`fit`). Pure functions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_json

PREVIEW_CHARS = 2_048
# Characters of a principal or role shown, and how many roles of one principal.
NAME_CHARS = 200
ROLES = 10
# Approvers a gate lists (a validated definition names at most 100; escalation adds its own).
APPROVERS = 100

# The status: at most STATUS_MAX_BYTES of JSON however large the run. Its fixed fields are
# bounded field by field (ids, names, a clipped error, the counts: under STATUS_HEAD_BYTES);
# each list has its own budget in bytes and count, filled in order until the next entry would
# not fit, and the run's output is shown when its JSON fits STATUS_OUTPUT_BYTES. The budgets add
# up to less than the bound (tests/rules/test_status_bounds.py checks both).
STATUS_MAX_BYTES = 256 * 1024
STATUS_HEAD_BYTES = 16 * 1024
STATUS_OUTPUT_BYTES = 32 * 1024
STATUS_ERROR_CHARS = 2_000
STATUS_GATES, STATUS_GATES_BYTES = 50, 56 * 1024
STATUS_STEPS, STATUS_STEPS_BYTES = 50, 88 * 1024
STATUS_AUDIT, STATUS_AUDIT_BYTES = 20, 24 * 1024
STATUS_GRANTS, STATUS_GRANTS_BYTES = 20, 8 * 1024
# A governed run lists no steps: its cycle (request, context, plan, assessment) takes their room.
GOVERNED_REQUEST_CHARS = 2_000
GOVERNED_CONTEXT_BYTES = 16 * 1024
GOVERNED_PLAN_BYTES = 48 * 1024
GOVERNED_ASSESSMENT_BYTES = 8 * 1024
GOVERNED_LIST = 20

# A page of one of a run's lists: at most PAGE_MAX entries and PAGE_BYTES of JSON (the first
# entry always, in the briefest form it needs).
PAGE_MAX = 500
PAGE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Bounds:
    """How much of each field one view shows."""

    text: int  # characters of free text: errors, reasons, reviews, comments
    preview: int  # characters of an output preview
    value: int  # bytes of JSON of a value shown whole (a subject, a plan, a patch); 0: none
    votes: int  # latest votes of each kind a gate lists
    units: int  # latest items (for_each) and iterations (repeat) a step lists, and plan errors
    gates: bool = True  # whether a step or an item shows its gate


# A step's items inside a step view, and the last resort for an entry too large otherwise (a
# gate's approvers are listed whole: one with a hundred long names may not fit even so).
BRIEF = Bounds(text=200, preview=256, value=0, votes=0, units=0, gates=False)
SUMMARY = Bounds(text=1_000, preview=PREVIEW_CHARS, value=8 * 1024, votes=10, units=10)
PAGE = Bounds(text=4_000, preview=PREVIEW_CHARS, value=64 * 1024, votes=100, units=10)
# Tried in turn for one entry until its JSON fits what is left of its list's budget.
SUMMARY_LADDER = (SUMMARY, BRIEF)
PAGE_LADDER = (PAGE, SUMMARY, BRIEF)

M = TypeVar("M", bound=BaseModel)
Render = Callable[[Bounds], M]


def cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clip(text: str | None, limit: int) -> str | None:
    return None if text is None else cut(text, limit)


def size(value: Any) -> int:
    """Bytes of `value` as JSON (what pydantic writes)."""
    return len(to_json(value, fallback=str))


def small(value: Any, limit: int) -> tuple[Any, bool]:
    """`value` when its JSON takes at most `limit` bytes, else None and True (left out)."""
    if value is None:
        return None, False
    if limit > 0 and size(value) <= limit:
        return value, False
    return None, True


def names(principals: Sequence[str], most: int = APPROVERS) -> list[str]:
    """The first `most` principals (or roles), each cut to NAME_CHARS."""
    return [cut(p, NAME_CHARS) for p in principals[:most]]


def shown(render: Render[M], ladder: Sequence[Bounds], room: int) -> tuple[M, int] | None:
    """The fullest rendering on the ladder whose JSON fits `room` bytes, with its size."""
    for bounds in ladder:
        view = render(bounds)
        n = size(view)
        if n <= room:
            return view, n
    return None


def fit(
    renders: Iterable[Render[M]],
    ladder: Sequence[Bounds],
    budget: int,
    most: int,
    *,
    uniform: bool = False,
    page: bool = False,
) -> list[M]:
    """Views in order while they fit `budget` bytes of JSON, at most `most`, each as full as it
    can be (down the ladder); the first that fits in no form ends the list. `uniform`: after the
    first entry, only the ladder's first form (a later entry that does not fit whole ends the
    list, or waits for the next page). A `page` is never empty: its first entry goes in whatever
    its size, in its last form if it must."""
    out: list[M] = []
    used = 0
    for render in renders:
        if len(out) >= most:
            break
        got = shown(render, ladder[:1] if uniform and out else ladder, budget - used)
        if got is None and page and not out:
            view = render(ladder[-1])
            got = view, size(view)
        if got is None:
            break
        out.append(got[0])
        used += got[1]
    return out
