"""A definition as a run carries it: small in its payloads, and one instance per worker process
for every run of the same snapshot.

A parked run's cost in a worker is mostly what it was started with: the worker keeps several
copies of a run's start payload for as long as it caches the run (about 9 KiB of resident memory
per cached run for a 950-byte input, and less than half of that below about 650 bytes). Written
out whole, a five-step definition is 3.3 KB of JSON, three quarters of it fields at their
defaults. So a snapshot is written packed: its JSON without the defaults (reading fills them in
again: the same model), deflated and in base64 (a fifth of the whole, 312 bytes for that
pipeline). Reading takes a packed snapshot or a plain JSON one (runs started before, or by hand
with the Temporal CLI). Runs started with the same snapshot share one validated Definition:
nothing in workflow code changes a definition (tests/test_snapshot.py replays every recorded
history and checks the shared ones are as read).
"""

from __future__ import annotations

import base64
import binascii
import functools
import zlib
from typing import Annotated, Any

from pydantic import PlainSerializer, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import to_json

from workflows.language.definition import Definition

# Snapshots shared per process: the catalog's pipelines and whatever inline ones runs carry, a
# few each. A larger one (a generated definition of hundreds of steps) is read for its run alone,
# so what is shared stays within SHARED_SNAPSHOTS x SHARED_SNAPSHOT_BYTES of JSON.
SHARED_SNAPSHOTS = 64
SHARED_SNAPSHOT_BYTES = 32_768
# The most JSON a packed snapshot may unpack to: what Temporal takes in one payload, so packing
# lets no larger definition through than a plain snapshot could be, and a packed one that would
# inflate past it is refused before it is read.
MAX_SNAPSHOT_BYTES = 2_097_152


def compact(definition: Definition) -> dict[str, Any]:
    """The definition's JSON without the fields at their defaults."""
    return definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def pack(definition: Definition) -> str:
    """The snapshot as a run's payloads carry it: its compact JSON, deflated, in base64."""
    return base64.b64encode(zlib.compress(to_json(compact(definition)), 9)).decode("ascii")


def unpack(packed: str, limit: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """The JSON a packed snapshot holds; ValueError when it is not one or would inflate past
    `limit` bytes (at most MAX_SNAPSHOT_BYTES)."""
    limit = min(limit, MAX_SNAPSHOT_BYTES)
    if limit < 1:  # zlib reads a max_length of 0 as no limit at all
        raise ValueError("no room left to unpack a definition snapshot")
    try:
        deflated = base64.b64decode(packed, validate=True)
        inflater = zlib.decompressobj()
        text = inflater.decompress(deflated, limit)
    except (binascii.Error, zlib.error, ValueError) as err:
        raise ValueError(f"not a packed definition snapshot: {err}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(
            f"a packed definition snapshot must unpack whole to at most {limit} bytes of JSON"
        )
    return text


@functools.lru_cache(maxsize=SHARED_SNAPSHOTS)
def _read(text: bytes) -> Definition:
    return Definition.model_validate_json(text)


def _shared(value: Any, handler: ValidatorFunctionWrapHandler) -> Definition:
    """A snapshot read from a payload, packed or plain: the process's instance of it when one
    was read already. Its key is the snapshot's JSON as written, so two runs share an instance
    only when their snapshots are the same text."""
    if isinstance(value, str):
        text = unpack(value)
        if len(text) <= SHARED_SNAPSHOT_BYTES:
            return _read(text)
        return Definition.model_validate_json(text)
    if isinstance(value, dict):
        text = to_json(value)
        if len(text) <= SHARED_SNAPSHOT_BYTES:
            return _read(text)
    result: Definition = handler(value)
    return result


# The type of every definition a run's input carries (its own, and its child pipelines').
Snapshot = Annotated[Definition, WrapValidator(_shared), PlainSerializer(pack, when_used="json")]
