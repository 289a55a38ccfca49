"""What the pre-core-v2 engine keeps per step, and its small formatting helpers (frozen)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activities.secrets import mask
from workflows.contract import StepState
from workflows.definition import StepSpec
from workflows.legacy.gates import Gate
from workflows.models import CompensationView

MEMO_SUBJECT_CHARS = 1_024  # larger subjects are left out of the inbox line (status has them)
PREVIEW_CHARS = 2_048


@dataclass
class StepRun:
    spec: StepSpec
    state: StepState = StepState.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    reason: str | None = None
    output: Any = None
    has_output: bool = False
    preview: str | None = None
    artifact: dict[str, Any] | None = None
    gate: Gate | None = None
    compensation: CompensationView | None = None
    completed_seq: int = 0
    round: int = 0
    approvers_seen: set[str] = field(default_factory=set)


def failure_message(err: BaseException) -> str:
    """The innermost cause's message: what actually went wrong."""
    cause: BaseException | None = err
    message = str(err)
    while cause is not None:
        message = getattr(cause, "message", None) or str(cause) or message
        cause = cause.__cause__
    return message


def preview_of(value: Any, limit: int = PREVIEW_CHARS) -> str:
    text = json.dumps(mask(value), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
