"""Pages from templates, and the filters that show data safely: every value is escaped, JSON is
shown as a bounded tree, review text as markdown without raw HTML, images or unsafe links."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from workflows.builds import package_version

TEMPLATES = Path(__file__).parent / "templates"
# A tree shows at most this many values and this depth; the rest is counted, not drawn.
TREE_NODES = 2_000
TREE_DEPTH = 12
MAX_MARKDOWN_CHARS = 20_000
# What a difference lists at most.
DIFF_ROWS = 500

# CommonMark with raw HTML off (it is shown as text) and no images (nothing loads from
# elsewhere); markdown-it's own link check already refuses javascript:, vbscript:, file: and
# data: links.
_md = MarkdownIt("commonmark", {"html": False}).disable("image")


def markdown(text: str | None) -> Markup:
    if not text:
        return Markup("")
    return Markup(_md.render(text[:MAX_MARKDOWN_CHARS]))


def json_tree(value: Any) -> Markup:
    """A JSON value as nested lists; strings are escaped text, never markup."""
    budget = [TREE_NODES]
    return Markup(f'<div class="tree">{_node(value, 0, budget)}</div>')


def _node(value: Any, depth: int, budget: list[int]) -> str:
    budget[0] -= 1
    if isinstance(value, dict | list):
        if not value:
            return '<span class="j-empty">{}</span>' if isinstance(value, dict) else "[]"
        if depth >= TREE_DEPTH:
            return '<span class="j-more">… (deeper than shown)</span>'
        pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        rows = []
        for i, (key, child) in enumerate(pairs):
            if budget[0] <= 0:
                rows.append(f'<li class="j-more">… {len(pairs) - i} more not shown</li>')
                break
            label = escape(str(key))
            rows.append(
                f'<li><span class="j-key">{label}</span>: {_node(child, depth + 1, budget)}</li>'
            )
        kind = "object" if isinstance(value, dict) else "array"
        return f'<ul class="j-{kind}">{"".join(rows)}</ul>'
    if isinstance(value, str):
        return f'<span class="j-str">{escape(value)}</span>'
    return f'<span class="j-lit">{escape(json.dumps(value))}</span>'


def diff(old: Any, new: Any, path: str = "") -> list[tuple[str, str, str]]:
    """What changes from `old` to `new`: (path, before, after) rows, `—` where absent."""
    rows: list[tuple[str, str, str]] = []
    _diff(old, new, path, rows)
    return rows[:DIFF_ROWS]


_ABSENT = object()


def _diff(old: Any, new: Any, path: str, rows: list[tuple[str, str, str]]) -> None:
    if len(rows) >= DIFF_ROWS:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}.{key}" if path else str(key)
            _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), sub, rows)
    elif old != new or type(old) is not type(new):
        rows.append((path or "(whole)", _short(old), _short(new)))


def _short(value: Any) -> str:
    if value is _ABSENT:
        return "—"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 300 else text[:299] + "…"


def time_left(deadline: datetime | None, now: datetime | None = None) -> str:
    if deadline is None:
        return "no deadline"
    seconds = int((deadline - (now or datetime.now(UTC))).total_seconds())
    if seconds <= 0:
        return "overdue"
    return "in " + span(seconds)


def age(since: datetime | None, now: datetime | None = None) -> str:
    if since is None:
        return ""
    return span(max(0, int(((now or datetime.now(UTC)) - since).total_seconds()))) + " ago"


def span(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def duration(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1_000 else f"{ms / 1000:.1f} s"


ICONS = {
    "succeeded": "✔",
    "completed": "✔",
    "approved": "✔",
    "open": "◐",
    "paused": "◐",
    "modified": "✎",
    "retried": "↻",
    "failed": "✖",
    "running": "▶",
    "pending": "○",
    "waiting": "◐",
    "awaiting_approval": "◐",
    "skipped": "↷",
    "cancelled": "■",
    "rejected": "✖",
    "compensated": "↺",
}


def icon(state: str) -> str:
    return ICONS.get(state, "•")


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(
    markdown=markdown,
    json_tree=json_tree,
    time_left=time_left,
    age=age,
    duration=duration,
    icon=icon,
    pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False),
)
env.globals["version"] = package_version()


def render(template: str, **ctx: Any) -> str:
    return env.get_template(template).render(**ctx)
