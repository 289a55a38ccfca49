"""A definition as a run carries it: small in its payloads, and one instance per worker process
for every run of the same snapshot.

A parked run's cost in a worker is mostly what it was started with. Written out whole, a
five-step definition is 3.3 KB of JSON, three quarters of it fields at their defaults, and the
worker keeps several copies of its run's start payload besides the parsed model (about 25 KiB
of resident memory per cached run for those 3.3 KB). So a snapshot is written with the fields
at their defaults left out (reading fills them in again: the same model), and runs started with
the same snapshot share one validated Definition. Nothing in workflow code changes a definition
(tests/test_snapshot.py replays every recorded history and checks the shared ones are as read).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import PlainSerializer, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import to_json

from workflows.language.definition import Definition

# Snapshots shared per process: the catalog's pipelines and whatever inline ones runs carry, a
# few each. A larger one (a generated definition of hundreds of steps) is read for its run alone,
# so what is shared stays within SHARED_SNAPSHOTS x SHARED_SNAPSHOT_BYTES of JSON.
SHARED_SNAPSHOTS = 64
SHARED_SNAPSHOT_BYTES = 32_768


def compact(definition: Definition) -> dict[str, Any]:
    """The definition's JSON without the fields at their defaults."""
    return definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)


@functools.lru_cache(maxsize=SHARED_SNAPSHOTS)
def _read(text: bytes) -> Definition:
    return Definition.model_validate_json(text)


def _shared(value: Any, handler: ValidatorFunctionWrapHandler) -> Definition:
    """A snapshot read from a payload: the process's instance of it when one was read already.
    Its key is the snapshot's JSON as written, so two runs share an instance only when their
    snapshots are the same text."""
    if isinstance(value, dict):
        text = to_json(value)
        if len(text) <= SHARED_SNAPSHOT_BYTES:
            return _read(text)
    result: Definition = handler(value)
    return result


# The type of every definition a run's input carries (its own, and its child pipelines').
Snapshot = Annotated[Definition, WrapValidator(_shared), PlainSerializer(compact, when_used="json")]
