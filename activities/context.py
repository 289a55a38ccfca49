"""What a running tool may use: its call, settings, shared clients and artifact storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from temporalio import activity

from activities.artifacts import ArtifactStore
from activities.bindings import SendRules
from activities.config import Settings
from activities.models import ToolCall


@dataclass
class ToolContext:
    """Handed to every tool function next to its validated input."""

    call: ToolCall
    settings: Settings
    http: httpx.AsyncClient
    artifacts: ArtifactStore
    log: Any = field(default_factory=lambda: structlog.get_logger("stepgate.tool"))
    # Secret values resolved for this call; tools mask them in anything they echo back.
    secret_values: set[str] = field(default_factory=set)
    # Where the bound secrets this call holds may go (None: it holds none). Requests through
    # `http` are checked against it by the client; a tool that hands them on otherwise (a
    # program's argv) asks it itself.
    send_rules: SendRules | None = None

    @property
    def idempotency_key(self) -> str:
        return self.call.idempotency_key

    @property
    def run_key(self) -> str:
        """The workflow id: artifacts and ledgers are kept per run."""
        return self.call.workflow_id

    def heartbeat(self, *details: Any) -> None:
        """Report progress; a no-op outside an activity (e.g. direct calls in tests)."""
        if activity.in_activity():
            activity.heartbeat(*details)
