"""The words a pattern is found by, and the words of a query: one tokenizer for both sides.

Both backends index and search these words only, never the user's text: no FTS5 or tsquery
operator, quote or prefix can reach the database's query parser, and both backends see the same
words (PostgreSQL's parser would otherwise keep `http.request` whole while FTS5 splits it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from activities.models import MemoryPattern

# Letters and digits of any script; everything else (punctuation, operators, `_`, NUL, lone
# surrogates) separates words.
_WORD = re.compile(r"[^\W_]+")
# Distinct words of one query: a 2,000-character request names far fewer that matter, and each is
# one more term every search ranks by.
MAX_QUERY_TERMS = 32
# Characters of one word: longer runs are not words anyone searches for (PostgreSQL refuses
# lexemes over 2 KiB).
MAX_WORD_CHARS = 64
# Characters of the text a pattern is indexed by.
MAX_DOC_CHARS = 32_000
# Plan steps whose ids, tools and review texts are indexed.
MAX_PLAN_STEPS = 200

# Function words that match nearly every pattern: as query terms they would make every search
# rank the whole table. PostgreSQL's `english` configuration drops these too; FTS5 would not.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)


def words(text: str) -> Iterator[str]:
    """The searchable words of `text`, lower-cased, in order (repeats kept)."""
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if len(word) <= MAX_WORD_CHARS and word not in STOPWORDS:
            yield word


def query_terms(q: str) -> list[str]:
    """The distinct words of a query, at most MAX_QUERY_TERMS; empty when `q` has none (only
    operators, punctuation or stopwords), and then the search finds nothing."""
    seen: dict[str, None] = {}
    for word in words(q):
        seen.setdefault(word, None)
        if len(seen) == MAX_QUERY_TERMS:
            break
    return list(seen)


def search_text(pattern: MemoryPattern) -> str:
    """The words a pattern is found by: request, context summary, the plan's step ids, tools and
    review texts, reasons, comments, decision and outcome; at most MAX_DOC_CHARS."""
    parts: list[str] = []
    size = 0
    for text in _fields(pattern):
        for word in words(text):
            size += len(word) + 1
            if size > MAX_DOC_CHARS:
                return " ".join(parts)
            parts.append(word)
    return " ".join(parts)


def _fields(p: MemoryPattern) -> Iterator[str]:
    yield p.request
    yield p.context_summary
    yield from _plan_texts(p.plan)
    for reason in p.reasons:
        yield from _strings(reason.get(key) for key in ("step", "rule", "detail"))
    yield from p.comments
    yield from _strings([p.decision, p.outcome])


def _plan_texts(plan: dict[str, Any] | None) -> Iterator[str]:
    steps = plan.get("steps") if isinstance(plan, dict) else None
    if not isinstance(steps, list):
        return
    for step in steps[:MAX_PLAN_STEPS]:
        if not isinstance(step, dict):
            continue
        approval = step.get("approval")
        review = approval.get("review") if isinstance(approval, dict) else None
        yield from _strings([step.get("id"), step.get("tool"), review])


def _strings(values: Iterable[object]) -> Iterator[str]:
    return (v for v in values if isinstance(v, str))
