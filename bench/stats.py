"""Percentiles without numpy: nearest-rank, so p99 of a small sample is an observed value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        raise ValueError("percentile of no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    n: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p99=percentile(values, 99),
            mean=sum(values) / len(values),
            max=max(values),
        )

    def as_dict(self, digits: int = 2) -> dict[str, float | int]:
        return {
            "n": self.n,
            "p50": round(self.p50, digits),
            "p99": round(self.p99, digits),
            "mean": round(self.mean, digits),
            "max": round(self.max, digits),
        }
