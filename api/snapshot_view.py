"""Packed definition snapshots shown as JSON: what the codec server's /decode answers, so the
Temporal Web UI and CLI show a run's definition rather than its base64 (workflows/snapshot.py).

Only for display, and only where a run's input carries snapshots: a `json/plain` payload whose
object has a packed string under `definition`, or under a name in `pipelines`. The expanded
payload is still a valid run input (a plain JSON snapshot is read as well as a packed one). A
string that is not a packed snapshot of a JSON object stays as it was. Bounded per request:
at most MAX_TRIED unpacks, MAX_SHOWN_BYTES of JSON in all; what does not fit stays packed.
Pure CPU work: the codec route runs it in its validation thread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_core import from_json, to_json
from temporalio.api.common.v1 import Payload

from workflows.snapshot import MAX_SNAPSHOT_BYTES, unpack

MAX_SHOWN_BYTES = 2 * MAX_SNAPSHOT_BYTES
MAX_TRIED = 16
# Only payloads holding this are read as JSON at all: most payloads are not a run's input.
_MARK = b'"definition"'


class _Budget:
    __slots__ = ("bytes", "tries")

    def __init__(self) -> None:
        self.bytes = MAX_SHOWN_BYTES
        self.tries = MAX_TRIED

    def expand(self, value: Any) -> Any:
        """`value` as a JSON object if it is a packed snapshot of one that fits, else as it was."""
        if not isinstance(value, str) or self.tries < 1 or self.bytes < 1:
            return value
        self.tries -= 1
        try:
            text = unpack(value, self.bytes)
            shown = from_json(text)
        except ValueError:
            return value
        if not isinstance(shown, dict):
            return value
        self.bytes -= len(text)
        return shown


def expand_snapshots(payloads: Sequence[Payload]) -> list[Payload]:
    """`payloads` with every packed snapshot of a run's input written out as JSON."""
    budget = _Budget()
    return [_expanded(p, budget) for p in payloads]


def _expanded(payload: Payload, budget: _Budget) -> Payload:
    if payload.metadata.get("encoding") != b"json/plain" or _MARK not in payload.data:
        return payload
    try:
        doc = from_json(payload.data)
    except ValueError:  # not JSON, or nested past the parser's depth limit
        return payload
    if not isinstance(doc, dict):
        return payload
    spent = budget.bytes
    if "definition" in doc:
        doc["definition"] = budget.expand(doc["definition"])
    pipelines = doc.get("pipelines")
    if isinstance(pipelines, dict):
        for name, snapshot in pipelines.items():
            pipelines[name] = budget.expand(snapshot)
    if budget.bytes == spent:  # nothing was expanded
        return payload
    return Payload(metadata=payload.metadata, data=to_json(doc))
