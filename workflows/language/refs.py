"""`${...}` references: parsing, static checks and resolution against a run's context.

Roots: `input.<path>`, `steps.<id>.output[.<path>]`, `steps.<id>.status`,
`steps.<id>.gate.response[.<field>]` (the answer to the step's gate form), `run.<field>`, and
`secret.<NAME>` (left as text here: only activities resolve secrets). `$${` writes a literal `${`
(a plan written as data can hold references of its own that way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from activities.models import ARTIFACT_MARKER, ArtifactRef, PathError, Slot, walk_path
from workflows.language.limits import MAX_INDEX_DIGITS, MAX_REF_SEGMENTS

REF = re.compile(r"\$\{([^}]*)\}")
# What a string is read as, left to right: `$${` (a literal `${`, never a reference) or a reference.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
RUN_FIELDS = ("workflow_id", "run_id", "requester", "pipeline", "started_at")
# Roots that exist only in some places: a for_each item (`item`, `index`), the iteration before
# (`previous.output` in a repeat step's inputs), the step's own output and iteration number (in
# `check` and `repeat.until` conditions).
LOCAL_ROOTS = ("item", "index", "previous", "output", "iteration")


class RefError(ValueError):
    """A reference is malformed or cannot be resolved; the message says which and why."""


@dataclass(frozen=True)
class Ref:
    root: str  # input | steps | run | secret
    step: str | None
    field: str | None  # for steps: output | status | gate (its response)
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
        if len(parts) >= 4 and parts[2:4] == ["gate", "response"]:
            return Ref("steps", parts[1], "gate", tuple(parts[4:]), body)
        if len(parts) < 3 or parts[2] not in ("output", "status"):
            raise RefError(
                f"malformed reference '${{{text}}}': use steps.<id>.output[.<path>], steps.<id>.status "
                "or steps.<id>.gate.response[.<field>]"
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
    if root in ("index", "iteration"):
        if len(parts) != 1:
            raise RefError(f"malformed reference '${{{text}}}': {root} has no fields")
        return Ref(root, None, None, (), body)
    if root == "previous":
        if len(parts) < 2 or parts[1] != "output":
            raise RefError(f"malformed reference '${{{text}}}': use previous.output[.<path>]")
        return Ref("previous", None, "output", tuple(parts[2:]), body)
    if root in ("item", "output"):
        return Ref(root, None, None, tuple(parts[1:]), body)
    raise RefError(
        f"malformed reference '${{{text}}}': must start with input, steps, run, secret, "
        "or (where they exist) item, index, previous, output, iteration"
    )


def tokens(text: str) -> Iterator[re.Match[str]]:
    """Each escape (group 1 None) and each reference (group 1 its inside) in `text`, in order."""
    return _TOKEN.finditer(text)


def unclosed(text: str) -> bool:
    """Whether `text` opens a reference it never closes (an escaped `$${` opens none)."""
    return "${" in _TOKEN.sub("", text)


def find_refs(obj: Any) -> list[str]:
    """The inside of every `${...}` in a JSON-like value, in order (`$${` escapes are none)."""
    if isinstance(obj, str):
        return [m.group(1) for m in tokens(obj) if m.group(1) is not None]
    if isinstance(obj, dict):
        return [r for v in obj.values() for r in find_refs(v)]
    if isinstance(obj, list):
        return [r for v in obj for r in find_refs(v)]
    return []


def walk(value: Any, path: tuple[str, ...], where: str) -> Any:
    """Follow `path` into JSON data, with the one walker the activities use too."""
    try:
        return walk_path(value, path, where)
    except PathError as err:
        raise RefError(str(err)) from None


@dataclass(frozen=True)
class Lazy:
    """A reference into a step output kept in the artifact store: only the activity reads it.

    A type of its own, so that data which merely looks like an artifact marker (run input, a
    tool's output, a patch) is never taken for one."""

    artifact: dict[str, Any]
    path: tuple[str, ...]

    def marker(self) -> dict[str, Any]:
        return {ARTIFACT_MARKER: self.artifact, "path": list(self.path)}


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
        offloaded: dict[str, dict[str, Any]] | None = None,
        local: dict[str, Any] | None = None,
        responses: dict[str, Any] | None = None,
    ) -> None:
        # Lenient: a step that produced no output (skipped, failed) reads as null. Used for the
        # run's output, where a skipped branch is normal; step inputs stay strict.
        self.lenient = lenient
        # Steps whose output is in the artifact store: step id -> its ArtifactRef (as a dict).
        self.offloaded = offloaded or {}
        # Values of the LOCAL_ROOTS that exist here (an item, the previous output, ...).
        self.local = local or {}
        # The answers to steps' gate forms: step id -> its gate's response (data, never resolved).
        self.responses = responses or {}
        self.inp = inp
        self.outputs = outputs
        self.statuses = statuses
        self.run = run

    def with_local(self, **values: Any) -> Scope:
        """The same scope, with `item`, `index`, `previous`, `output` or `iteration` set."""
        return Scope(
            self.inp,
            self.outputs,
            self.statuses,
            self.run,
            lenient=self.lenient,
            offloaded=self.offloaded,
            local={**self.local, **values},
            responses=self.responses,
        )

    def value(self, ref: Ref) -> Any:
        where = f"${{{ref.text}}}"
        if ref.root == "input":
            return walk(self.inp, ref.path, where)
        if ref.root == "run":
            return self.run.get(ref.field or "")
        if ref.root == "secret":
            return "${secret." + ref.path[0] + "}"
        if ref.root in LOCAL_ROOTS:
            if ref.root not in self.local:
                raise RefError(f"{where}: `{ref.root}` does not exist here")
            value = self.local[ref.root]
            if ref.root == "previous" and value is None:
                return None  # the first iteration has no previous output
            return walk(value, ref.path, where)
        if ref.step is None:
            raise RefError(f"{where}: no step named")
        if ref.field == "status":
            return self.statuses.get(ref.step)
        if ref.field == "gate":
            if ref.step not in self.responses:
                if self.lenient:
                    return None
                raise RefError(
                    f"{where}: the gate of step {ref.step!r} was not answered with a form"
                )
            return walk(self.responses[ref.step], ref.path, where)
        if ref.step not in self.outputs:
            if self.lenient:
                return None
            raise RefError(f"{where}: step {ref.step!r} has no output (it did not succeed)")
        if ref.step in self.offloaded:
            return Lazy(self.offloaded[ref.step], ref.path)
        return walk(self.outputs[ref.step], ref.path, where)

    def lookup(self, path: str) -> Any:
        """For expressions: a missing value is null rather than an error."""
        try:
            value = self.value(parse_ref(path))
        except RefError:
            return None
        if isinstance(value, Lazy):
            raise RefError(
                f"condition reads {path!r}, an output stored as an artifact; "
                "conditions can only read outputs kept in history"
            )
        return value

    def resolve(self, obj: Any) -> Any:
        """Resolve every reference in a JSON-like value (see `resolve_slots`)."""
        return self.resolve_slots(obj)[0]

    def resolve_slots(self, obj: Any) -> tuple[Any, list[Slot]]:
        """Resolve every reference in a JSON-like value from the definition's own text, and list
        the slots the activity must fill: secrets named in the text, outputs in the artifact
        store. What references bring in is data: it is never resolved again.

        A string that is exactly one reference keeps the referenced JSON type; references inside
        longer strings are formatted (JSON for objects and lists, plain text otherwise).
        """
        slots: list[Slot] = []
        return self._resolve(obj, [], slots), slots

    def _resolve(self, obj: Any, at: list[str | int], slots: list[Slot]) -> Any:
        if isinstance(obj, dict):
            return {k: self._resolve(v, [*at, k], slots) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._resolve(v, [*at, i], slots) for i, v in enumerate(obj)]
        if not isinstance(obj, str) or "${" not in obj:
            return obj
        whole = REF.fullmatch(obj.strip())
        if whole:
            ref = parse_ref(whole.group(1))
            value = self.value(ref)
            if isinstance(value, Lazy):
                marker = value.marker()
                slots.append(
                    Slot(
                        path=at,
                        expect=marker,
                        artifact=ArtifactRef.model_validate(value.artifact),
                        artifact_path=list(value.path),
                    )
                )
                return marker
            if ref.root == "secret":
                slots.append(Slot(path=at, expect=value, parts=[("secret", ref.path[0])]))
            return value
        parts: list[tuple[Literal["text", "secret"], str]] = []
        pos = 0
        for m in tokens(obj):
            parts.append(("text", obj[pos : m.start()]))
            pos = m.end()
            if m.group(1) is None:
                parts.append(("text", "${"))
                continue
            ref = parse_ref(m.group(1))
            if ref.root == "secret":
                parts.append(("secret", ref.path[0]))
            else:
                parts.append(("text", _format(self.value(ref))))
        parts.append(("text", obj[pos:]))
        text = "".join(v if kind == "text" else "${secret." + v + "}" for kind, v in parts)
        if any(kind == "secret" for kind, _ in parts):
            slots.append(Slot(path=at, expect=text, parts=[p for p in parts if p[1]]))
        return text


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Lazy):
        raise RefError("an output stored as an artifact cannot be embedded inside a string")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
