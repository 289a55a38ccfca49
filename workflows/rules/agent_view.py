"""What the outside sees of an agent step: its loop (turns, tokens, errors), its latest calls and
messages within the `Bounds` they are shown with, each call whole on the calls page, and the
run's grants. Pure functions of the state."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from functools import partial

from activities.masking import mask
from workflows.agent_models import AgentView, CallView, GrantView, MessageView
from workflows.language.definition import StepSpec
from workflows.rules.agent_policy import grant_view
from workflows.rules.agent_state import AgentCall, AgentMessage, AgentRecord, Grant
from workflows.rules.agent_transcript import as_text
from workflows.rules.bounds import (
    ROLES,
    STATUS_GRANTS,
    STATUS_GRANTS_BYTES,
    SUMMARY_LADDER,
    Bounds,
    clip,
    fit,
    names,
    small,
)
from workflows.rules.state import RunData


def agent_view(rec: AgentRecord, spec: StepSpec, b: Bounds) -> AgentView:
    agent = spec.agent
    calls = rec.calls[-b.units :] if b.units > 0 else []
    messages = rec.messages[-b.units :] if b.units > 0 else []
    return AgentView(
        turn=rec.turn,
        max_turns=agent.max_turns if agent is not None else 0,
        tokens=rec.tokens,
        max_total_tokens=agent.max_total_tokens if agent is not None else None,
        tool_errors=rec.tool_errors,
        calls=[call_view(c, b) for c in calls],
        calls_total=len(rec.calls),
        call_counts=dict(Counter(c.state for c in rec.calls)),
        transcript=[message_view(m, b) for m in messages],
        messages_total=rec.messages_total,
        transcript_artifact=rec.transcript,
        transcript_chunks=len(rec.chunks),
    )


def call_view(c: AgentCall, b: Bounds) -> CallView:
    """A call: what it asked, how it was decided, by whom, what ran, how it ended."""
    arguments, cut = small(mask(c.arguments), b.value)
    differs = c.arguments is not None and c.proposed != c.arguments
    proposed, _ = small(mask(c.proposed), b.value) if differs or c.arguments is None else (None, 0)
    gate = c.gate
    return CallView(
        n=c.n,
        gate=c.name,
        turn=c.turn,
        function=c.function,
        tool=c.tool,
        decision=c.decision,
        reason=clip(c.reason, b.text),
        state=c.state,
        risk=c.risk,
        arguments=arguments,
        arguments_truncated=cut or c.compact,
        proposed=proposed,
        changed=c.changed,
        deciders=[clip(d, b.text) or "" for d in gate.decided_by] if gate is not None else [],
        granted_by=clip(c.granted_by, b.text),
        result_preview=clip(c.preview, b.preview),
        artifact=c.artifact,
        error=clip(c.error, b.text),
        attempts=c.attempts,
        started_at=c.started_at,
        ended_at=c.ended_at,
    )


def message_view(m: AgentMessage, b: Bounds) -> MessageView:
    """A message as the status shows it: its text (a tool result's JSON) clipped, the calls it
    asks for or answers named by their gate ids' numbers."""
    content = None if m.content is None else clip(as_text(mask(m.content)), b.preview)
    return MessageView(
        role=m.role,
        content=content,
        calls=[clip(str(tc.get("id")), 100) or "" for tc in m.tool_calls] if m.tool_calls else None,
        call=f"call-{m.n}" if m.n is not None else None,
    )


def grants(state: RunData, now: datetime | None) -> list[GrantView]:
    """The run's latest grants within their budget; without a clock, as of when each began."""
    latest = [partial(_grant, g, now) for g in reversed(state.grants[-STATUS_GRANTS:])]
    return fit(latest, SUMMARY_LADDER, STATUS_GRANTS_BYTES, STATUS_GRANTS, uniform=True)[::-1]


def _grant(g: Grant, now: datetime | None, b: Bounds) -> GrantView:
    view = grant_view(g, now or g.granted_at)
    return view.model_copy(update={"granted_by": names(view.granted_by, ROLES)})
