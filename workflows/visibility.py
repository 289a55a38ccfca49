"""What a run last told visibility and the memo, so each workflow task writes only what changed:
at most one search-attribute upsert and one memo change, none for what its starter already set.
Workflow code, shared by PipelineWorkflow and GovernedWorkflow."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from workflows.contract import (
        MEMO_GATES,
        MEMO_GATES_MORE,
        SA_AWAITING,
        SA_PIPELINE,
        SA_PRIORITY,
        SA_STATE,
    )
    from workflows.models import GateSummary
    from workflows.rules.inbox import memo_lines


class Visibility:
    """The run's pipeline name, run state, who may decide, the priority of its most urgent open
    gate (what the API's `stepgate_gates_open` counts by), and its open gates' inbox lines.

    What the run was started with counts as told: the API starts a run with its name and state
    `running`, so a run that ends in its first task upserts once, and a run with no open gate
    never writes the memo. A run started bare (the Temporal CLI) names its pipeline in its first
    upsert."""

    # Slots: a worker keeps one of these per cached run.
    __slots__ = ("_awaiting", "_memo", "_named", "_pipeline", "_priority", "_state")

    def __init__(self, pipeline: str) -> None:
        told = workflow.info().typed_search_attributes
        self._pipeline = pipeline
        self._named = told.get(SA_PIPELINE) == pipeline
        self._state: str | None = told.get(SA_STATE)
        self._awaiting: list[str] = list(told.get(SA_AWAITING) or [])
        self._priority: str | None = told.get(SA_PRIORITY)
        # The memo's lines as last written, as their JSON text: each line without the fields at
        # its defaults (the inbox reads them back into GateSummary, defaults and all), half the
        # bytes of the whole lines in history; a run waiting at its gate keeps only this text.
        self._memo: tuple[bytes, int] = (b"[]", 0)

    def tell(
        self, state: str, awaiting: list[str], lines: list[GateSummary], details: str
    ) -> list[GateSummary]:
        """Write what changed since the last call; `lines` are every open gate's inbox line, the
        most urgent first (the memo keeps the first MEMO_GATES_MAX, within MEMO_BYTES, and counts
        the rest). Returns the lines the memo holds now."""
        updates: list[SearchAttributeUpdate[Any]] = []
        if not self._named:
            updates.append(SA_PIPELINE.value_set(self._pipeline))
            self._named = True
        if self._state != state:
            updates.append(SA_STATE.value_set(state))
            self._state = state
        if self._awaiting != awaiting:
            updates.append(
                SA_AWAITING.value_set(awaiting) if awaiting else SA_AWAITING.value_unset()
            )
            self._awaiting = awaiting
        priority = lines[0].priority if lines else None
        if self._priority != priority:
            updates.append(
                SA_PRIORITY.value_set(priority) if priority else SA_PRIORITY.value_unset()
            )
            self._priority = priority
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(details)
        kept = memo_lines(lines)
        written = [line.model_dump(mode="json", exclude_defaults=True) for line in kept]
        memo = to_json(written), len(lines) - len(kept)
        if memo != self._memo:
            # The count of lines left out only when it changed: most runs never write it
            # (readers take it as 0 when absent), one payload less in history and memory.
            upsert: dict[str, Any] = {MEMO_GATES: written}
            if memo[1] != self._memo[1]:
                upsert[MEMO_GATES_MORE] = memo[1]
            self._memo = memo
            workflow.upsert_memo(upsert)
        return kept
