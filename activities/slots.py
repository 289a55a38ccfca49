"""Filling a call's slots: the only places where an activity resolves anything in its arguments.

The workflow lists each place where the definition's own text named a secret or an output kept
in the artifact store. Everything else in the arguments is data and stays exactly as it came,
however much it looks like `${secret.NAME}` or an artifact marker.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from activities.artifacts import ArtifactStore
from activities.errors import fatal
from activities.models import ArtifactRef, PathError, Slot, walk_path
from activities.secrets import SecretStore


def _holder(args: Any, path: list[str | int]) -> tuple[Any, str | int] | None:
    """The container holding the value at `path`, and its key; None when the path is gone."""
    node = args
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    last = path[-1] if path else None
    if last is None:
        return None
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        return node, last
    if isinstance(node, list) and isinstance(last, int) and -len(node) <= last < len(node):
        return node, last
    return None


def held(args: Any, slots: list[Slot]) -> set[str]:
    """The names of the secrets that `slots` still place in `args` (a slot a patch replaced
    places nothing)."""
    names: set[str] = set()
    for slot in slots:
        found = _holder(args, slot.path)
        if found is not None and found[0][found[1]] == slot.expect:
            names.update(text for kind, text in slot.parts or () if kind == "secret")
    return names


async def read_stored(artifacts: ArtifactStore, ref: ArtifactRef, path: list[str]) -> Any:
    """The value at `path` in a step output kept in the artifact store."""
    data = await artifacts.read_ref(ref)
    value = await asyncio.to_thread(json.loads, data)
    try:
        return walk_path(value, path, f"stored output {ref.path!r}")
    except PathError as err:
        raise fatal(str(err), "BadReference") from None


async def fill(
    args: dict[str, Any],
    slots: list[Slot],
    secrets: SecretStore,
    artifacts: ArtifactStore,
    used: set[str],
    names: set[str] | None = None,
) -> dict[str, Any]:
    """`args` with every slot that still holds what the workflow put there resolved; secret
    values used go into `used` (for masking), their names into `names`. A slot a patch replaced
    is left as data."""
    for slot in slots:
        found = _holder(args, slot.path)
        if found is None:
            continue
        node, key = found
        if node[key] != slot.expect:
            continue
        if slot.artifact is not None:
            node[key] = await read_stored(artifacts, slot.artifact, slot.artifact_path)
        elif slot.parts is not None:
            node[key] = "".join(
                text if kind == "text" else secrets.reveal(text, used) for kind, text in slot.parts
            )
            if names is not None:
                names.update(text for kind, text in slot.parts if kind == "secret")
    return args
