"""The report table's cells: a row is measure, result, target, verdict; shared by every section."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.scale import TARGETS

Row = tuple[str, str, str, str]


def num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


def verdict(r: Mapping[str, Any], key: str) -> tuple[str, str]:
    target = TARGETS[key]
    limit = f"{target.sense} {target.limit:g} {target.unit}".replace(" x", "x")
    return limit, target.check(r.get(key))


def render(body: Sequence[Sequence[str]]) -> str:
    """Rows of equally many cells as aligned columns."""
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in body
    )
