"""A small strict parser of the Prometheus text exposition format (0.0.4), for the metrics tests.

Strict: every line is a comment, blank, or a sample `name{labels} value`; names and label names
follow Prometheus' grammar; label values are quoted with only `\\\\`, `\\"` and `\\n` escapes; a
`# TYPE` comes before the samples of its family and names a known type; a histogram's buckets
are cumulative and end at `+Inf` equal to its `_count`. Anything else raises ValueError.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Family:
    name: str
    type: str = "untyped"
    samples: list[Sample] = field(default_factory=list)


def _labels(text: str, at: int, line: str) -> tuple[dict[str, str], int]:
    """The labels from `text[at]` (just past `{`) to the closing `}`; the index past it."""
    labels: dict[str, str] = {}
    while True:
        if text[at] == "}":
            return labels, at + 1
        m = LABEL_NAME.match(text, at)
        if m is None or text[m.end() : m.end() + 2] != '="':
            raise ValueError(f"bad label at {at}: {line!r}")
        key, at = m.group(), m.end() + 2
        value: list[str] = []
        while text[at] != '"':
            if text[at] == "\\":
                esc = text[at + 1]
                if esc not in '\\"n':
                    raise ValueError(f"bad escape \\{esc}: {line!r}")
                value.append("\n" if esc == "n" else esc)
                at += 2
            else:
                value.append(text[at])
                at += 1
        if key in labels:
            raise ValueError(f"label {key} twice: {line!r}")
        labels[key] = "".join(value)
        at += 1
        if text[at] == ",":
            at += 1
        elif text[at] != "}":
            raise ValueError(f"expected , or }} at {at}: {line!r}")


def _value(text: str, line: str) -> float:
    parts = text.split()
    if len(parts) not in (1, 2):  # a value, and optionally a timestamp
        raise ValueError(f"bad value: {line!r}")
    word = parts[0]
    if word in ("+Inf", "-Inf", "NaN"):
        return float(word.replace("Inf", "inf"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", word):
        raise ValueError(f"bad number {word!r}: {line!r}")
    return float(word)


def _family_of(name: str, families: dict[str, Family]) -> Family:
    for suffix in ("", *SUFFIXES):
        if suffix and name.endswith(suffix) and name[: -len(suffix)] in families:
            return families[name[: -len(suffix)]]
        if not suffix and name in families:
            return families[name]
    families[name] = Family(name)
    return families[name]


def parse(text: str) -> dict[str, Family]:
    """Every metric family in `text`, by name; ValueError at the first thing out of grammar."""
    families: dict[str, Family] = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith("#"):
            words = line.split(None, 3)
            if len(words) >= 3 and words[1] in ("HELP", "TYPE"):
                if NAME.fullmatch(words[2]) is None:
                    raise ValueError(f"bad metric name: {line!r}")
                if words[1] == "TYPE":
                    kind = words[3].strip() if len(words) == 4 else ""
                    if kind not in TYPES or (words[2] in families and families[words[2]].samples):
                        raise ValueError(f"bad or late TYPE: {line!r}")
                    families.setdefault(words[2], Family(words[2])).type = kind
            continue
        m = NAME.match(line)
        if m is None:
            raise ValueError(f"bad sample: {line!r}")
        name, at = m.group(), m.end()
        labels: dict[str, str] = {}
        if at < len(line) and line[at] == "{":
            try:
                labels, at = _labels(line, at + 1, line)
            except IndexError:
                raise ValueError(f"unterminated labels: {line!r}") from None
        if at >= len(line) or line[at] != " ":
            raise ValueError(f"expected a space before the value: {line!r}")
        _family_of(name, families).samples.append(Sample(name, labels, _value(line[at:], line)))
    for family in families.values():
        if family.type == "histogram":
            _check_histogram(family)
    return families


def _check_histogram(family: Family) -> None:
    """Buckets cumulative per label set, ending at +Inf equal to _count."""
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for s in family.samples:
        rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name == family.name + "_bucket":
            series.setdefault(rest, []).append(
                (float(s.labels["le"].replace("Inf", "inf")), s.value)
            )
        elif s.name == family.name + "_count":
            counts[rest] = s.value
    for key, buckets in series.items():
        bounds = [b for b, _ in buckets]
        values = [v for _, v in buckets]
        if bounds != sorted(bounds) or not math.isinf(bounds[-1]) or values != sorted(values):
            raise ValueError(f"{family.name}{dict(key)}: buckets not cumulative up to +Inf")
        if counts.get(key) != values[-1]:
            raise ValueError(f"{family.name}{dict(key)}: +Inf bucket differs from _count")


def value(families: dict[str, Family], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    family = _family_of(name, dict(families))
    return sum(
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )
