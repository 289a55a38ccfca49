"""`${...}` references: parsing, static checks and resolution against a run's context.

Roots: `input.<path>`, `steps.<id>.output[.<path>]`, `steps.<id>.status`, `run.<field>`, and
`secret.<NAME>` (left as text here: only activities resolve secrets).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from activities.models import ARTIFACT_MARKER
from workflows.limits import MAX_INDEX_DIGITS, MAX_REF_SEGMENTS

REF = re.compile(r"\$\{([^}]*)\}")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
RUN_FIELDS = ("workflow_id", "run_id", "requester", "pipeline", "started_at")


class RefError(ValueError):
    """A reference is malformed or cannot be resolved; the message says which and why."""


@dataclass(frozen=True)
class Ref:
    root: str  # input | steps | run | secret
    step: str | None
    field: str | None  # for steps: output | status
    path: tuple[str, ...]
    text: str


def parse_ref(text: str) -> Ref:
    """Parse the inside of `${...}` (or a bare expression path)."""
    body = text.strip()
    parts = body.split(".") if body else []
    if not parts or any(not _SEGMENT.match(p) for p in parts):
        raise RefError(f"malformed reference '${{{text}}}': expected dotted names")
    if len(parts) > MAX_REF_SEGMENTS:
        raise RefError(f"malformed reference: more than {MAX_REF_SEGMENTS} dotted names")
    # A list index becomes an int when the run resolves it: a huge one is never in range, and
    # past 4,300 digits Python refuses to convert it at all (inside workflow code).
    if any(len(p.lstrip("-")) > MAX_INDEX_DIGITS and p.lstrip("-").isdigit() for p in parts):
        raise RefError(f"malformed reference: a list index has at most {MAX_INDEX_DIGITS} digits")
    root = parts[0]
    if root == "input":
        return Ref("input", None, None, tuple(parts[1:]), body)
    if root == "steps":
        if len(parts) < 3 or parts[2] not in ("output", "status"):
            raise RefError(
                f"malformed reference '${{{text}}}': use steps.<id>.output[.<path>] or steps.<id>.status"
            )
        if parts[2] == "status" and len(parts) > 3:
            raise RefError(f"malformed reference '${{{text}}}': status has no fields")
        return Ref("steps", parts[1], parts[2], tuple(parts[3:]), body)
    if root == "run":
        if len(parts) != 2 or parts[1] not in RUN_FIELDS:
            raise RefError(f"malformed reference '${{{text}}}': run has {', '.join(RUN_FIELDS)}")
        return Ref("run", None, parts[1], (), body)
    if root == "secret":
        if len(parts) != 2:
            raise RefError(f"malformed reference '${{{text}}}': use secret.<NAME>")
        return Ref("secret", None, None, (parts[1],), body)
    raise RefError(
        f"malformed reference '${{{text}}}': must start with input, steps, run or secret"
    )


def find_refs(obj: Any) -> list[str]:
    """The inside of every `${...}` in a JSON-like value, in order."""
    if isinstance(obj, str):
        return REF.findall(obj)
    if isinstance(obj, dict):
        return [r for v in obj.values() for r in find_refs(v)]
    if isinstance(obj, list):
        return [r for v in obj for r in find_refs(v)]
    return []


def walk(value: Any, path: tuple[str, ...], where: str) -> Any:
    """Follow `path` into JSON data; stops at an offloaded output and returns a lazy marker."""
    for i, key in enumerate(path):
        if isinstance(value, dict) and ARTIFACT_MARKER in value:
            return {ARTIFACT_MARKER: value[ARTIFACT_MARKER], "path": list(path[i:])}
        if isinstance(value, dict):
            if key not in value:
                raise RefError(f"{where}: no field {key!r}")
            value = value[key]
        elif isinstance(value, list) and key.lstrip("-").isdigit():
            idx = int(key)
            if not -len(value) <= idx < len(value):
                raise RefError(f"{where}: index {idx} out of range")
            value = value[idx]
        else:
            raise RefError(f"{where}: cannot take {key!r} of {type(value).__name__}")
    return value


class Scope:
    """What references resolve against: run input, step outputs and statuses, run facts."""

    def __init__(
        self,
        inp: dict[str, Any],
        outputs: dict[str, Any],
        statuses: dict[str, str],
        run: dict[str, Any],
        *,
        lenient: bool = False,
    ) -> None:
        # Lenient: a step that produced no output (skipped, failed) reads as null. Used for the
        # run's output, where a skipped branch is normal; step inputs stay strict.
        self.lenient = lenient
        self.inp = inp
        self.outputs = outputs
        self.statuses = statuses
        self.run = run

    def value(self, ref: Ref) -> Any:
        where = f"${{{ref.text}}}"
        if ref.root == "input":
            return walk(self.inp, ref.path, where)
        if ref.root == "run":
            return self.run.get(ref.field or "")
        if ref.root == "secret":
            return "${secret." + ref.path[0] + "}"
        if ref.step is None:
            raise RefError(f"{where}: no step named")
        if ref.field == "status":
            return self.statuses.get(ref.step)
        if ref.step not in self.outputs:
            if self.lenient:
                return None
            raise RefError(f"{where}: step {ref.step!r} has no output (it did not succeed)")
        return walk(self.outputs[ref.step], ref.path, where)

    def lookup(self, path: str) -> Any:
        """For expressions: a missing value is null rather than an error."""
        try:
            value = self.value(parse_ref(path))
        except RefError:
            return None
        if isinstance(value, dict) and ARTIFACT_MARKER in value:
            raise RefError(
                f"condition reads {path!r}, an output stored as an artifact; "
                "conditions can only read outputs kept in history"
            )
        return value

    def resolve(self, obj: Any) -> Any:
        """Resolve every reference in a JSON-like value.

        A string that is exactly one reference keeps the referenced JSON type; references inside
        longer strings are formatted (JSON for objects and lists, plain text otherwise).
        """
        if isinstance(obj, str):
            whole = REF.fullmatch(obj.strip())
            if whole:
                return self.value(parse_ref(whole.group(1)))
            return REF.sub(lambda m: _format(self.value(parse_ref(m.group(1)))), obj)
        if isinstance(obj, dict):
            return {k: self.resolve(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.resolve(v) for v in obj]
        return obj


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and ARTIFACT_MARKER in value:
        raise RefError("an output stored as an artifact cannot be embedded inside a string")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
