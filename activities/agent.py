"""Stepgate's own activities for agent steps: the check of what a model asked for (each call's
arguments against its tool's input model, each call's risk as its tool says; a final reply
parsed as JSON and checked against the step's output_schema), and the writes of a conversation
to the artifact store (a chunk of earlier messages, or the whole transcript)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio import activity

from activities.artifacts import ArtifactStore
from activities.checks import MAX_ISSUES, schema_issues
from activities.models import (
    AGENT_CHECK_ACTIVITY,
    AGENT_TRANSCRIPT_ACTIVITY,
    AgentCheck,
    AgentCheckResult,
    ArtifactRef,
    CallCheck,
    CallToCheck,
    TranscriptWrite,
)
from activities.registry import ToolError, ToolRegistry
from activities.secrets import SecretStore
from activities.slots import fill

# Transcripts fill only the results their slots name from the artifact store, never a secret.
NO_SECRETS = SecretStore(None, environ={})


class AgentActivities:
    """Built once per worker with its tool registry and artifact store."""

    def __init__(self, registry: ToolRegistry, artifacts: ArtifactStore) -> None:
        self.registry = registry
        self.artifacts = artifacts

    def activities(self) -> list[Callable[..., Any]]:
        return [self.check, self.transcript]

    @activity.defn(name=AGENT_CHECK_ACTIVITY)
    async def check(self, inp: AgentCheck) -> AgentCheckResult:
        """Off the event loop: validating is CPU work."""
        return await asyncio.to_thread(self.check_now, inp)

    def check_now(self, inp: AgentCheck) -> AgentCheckResult:
        out = AgentCheckResult(calls=[self._call(c) for c in inp.calls])
        if inp.reply is not None:
            try:
                value = json.loads(inp.reply)
            except ValueError as err:
                out.reply_issues = [f"the reply is not JSON: {err}"]
                return out
            if inp.json_schema is not None:
                out.reply_issues = schema_issues(inp.json_schema, value, "reply")
            out.reply_json = value if not out.reply_issues else None
        return out

    def _call(self, c: CallToCheck) -> CallCheck:
        try:
            tool = self.registry.resolve(c.tool)
        except ToolError as err:
            return CallCheck(n=c.n, issues=[str(err)])
        try:
            tool.input_model.model_validate(c.arguments)
        except ValidationError as err:
            issues = [
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in err.errors()[:MAX_ISSUES]
            ]
            return CallCheck(n=c.n, issues=issues)
        try:
            risk = tool.risk_for(c.arguments)
        except Exception:  # a risk function that fails on these arguments: the riskiest
            risk = "high"
        return CallCheck(n=c.n, risk=risk if risk in ("low", "medium", "high") else "high")

    @activity.defn(name=AGENT_TRANSCRIPT_ACTIVITY)
    async def transcript(self, w: TranscriptWrite) -> ArtifactRef:
        """The earlier chunks' messages, then these (results read from the store where their
        slots say), written as one JSON list."""
        messages: list[Any] = []
        for part in w.parts:
            stored = json.loads(await self.artifacts.read_ref(part))
            messages.extend(stored if isinstance(stored, list) else [stored])
        # Only the artifacts slots name are read: secrets are never part of a transcript.
        filled = await fill(
            {"messages": w.messages}, _stored_only(w), NO_SECRETS, self.artifacts, set()
        )
        messages.extend(filled["messages"])
        body = json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode()
        return await self.artifacts.put(w.workflow_id, w.name, body, "application/json")


def _stored_only(w: TranscriptWrite) -> list[Any]:
    return [s for s in w.slots if s.artifact is not None]
