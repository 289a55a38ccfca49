"""Reading a for_each step's list back from a step output kept in the artifact store: workflow
code never reads the store, and what this returns enters the run's history, so it is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.artifacts import ArtifactStore
from activities.documents import canonical_json
from activities.errors import fatal
from activities.models import LOAD_LIST_ACTIVITY, ListCall, ListResult
from activities.slots import read_stored


class ListActivities:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    def activities(self) -> list[Callable[..., Any]]:
        return [self.load_list]

    @activity.defn(name=LOAD_LIST_ACTIVITY)
    async def load_list(self, call: ListCall) -> ListResult:
        """The value at `call.path` in the stored output (whether it is a list, and how many
        items it has, the workflow's rules judge); refused when its JSON is over `max_bytes`."""
        value = await read_stored(self.artifacts, call.artifact, call.path)
        size = len((await asyncio.to_thread(canonical_json, value)).encode())
        if size > call.max_bytes:
            where = ".".join(call.path) or "(the whole output)"
            raise fatal(
                f"the list at {where} is {size} bytes of JSON, more than {call.max_bytes}: "
                "narrow it first (a data.transform step that keeps what the items need)",
                "ListTooLarge",
            )
        return ListResult(value=value)
