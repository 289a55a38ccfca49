"""An agent's conversation as the model is sent it: the messages kept inline and the chunks of
earlier ones in the artifact store, what a tool message says of each call's end (the arguments
that ran, marked when an approver changed them), and when the oldest messages move out. Pure.

Everything here is data: a reply's text or a tool's result is never resolved. The only places a
model call reads from the artifact store are the slots built here, from the typed references the
run recorded (a chunk it wrote, a result the tool activity stored), never from message text."""

from __future__ import annotations

from typing import Any

from activities.documents import canonical_json
from activities.models import ARTIFACT_MARKER, ArtifactRef, Slot
from workflows.language.limits import AGENT_WINDOW_BYTES
from workflows.rules.agent_state import AgentCall, AgentMessage, AgentRecord
from workflows.rules.records import Result

# Messages a chunk leaves inline at least: the latest turn stays readable in the status.
KEEP_INLINE = 4


def add(rec: AgentRecord, message: AgentMessage) -> None:
    """Append a message, counting its bytes."""
    message.size = len(canonical_json(message.model_dump(mode="json", exclude={"size"})))
    rec.messages.append(message)
    rec.messages_total += 1
    rec.inline += message.size


def as_text(value: Any) -> str:
    """A value as a message's text: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else canonical_json(value)


def _marker(ref: dict[str, Any]) -> dict[str, Any]:
    return {ARTIFACT_MARKER: ref, "path": []}


def wire(rec: AgentRecord) -> tuple[list[Any], list[Slot]]:
    """The conversation for a model call: a marker per stored chunk (the call reads it as the
    list of messages it holds), then the inline messages; and the slots that read them."""
    messages: list[Any] = []
    slots: list[Slot] = []
    for ref in rec.chunks:
        slots.append(_slot(["messages", len(messages)], ref))
        messages.append(_marker(ref))
    for m in rec.messages:
        if m.artifact is not None:
            slots.append(_slot(["messages", len(messages), "content", "result"], m.artifact))
        messages.append(wire_message(m))
    return messages, slots


def wire_message(m: AgentMessage) -> dict[str, Any]:
    """A message in llm.chat's input form."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = m.tool_calls
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def head(rec: AgentRecord, count: int) -> tuple[list[dict[str, Any]], list[Slot]]:
    """The first `count` inline messages as a chunk writes them, with the slots of the results
    it reads from the store to write them whole."""
    messages: list[dict[str, Any]] = []
    slots: list[Slot] = []
    for m in rec.messages[:count]:
        if m.artifact is not None:
            slots.append(_slot(["messages", len(messages), "content", "result"], m.artifact))
        messages.append(wire_message(m))
    return messages, slots


def _slot(path: list[str | int], ref: dict[str, Any]) -> Slot:
    return Slot(path=path, expect=_marker(ref), artifact=ArtifactRef.model_validate(ref))


def due(rec: AgentRecord) -> int:
    """How many of the oldest inline messages move to the artifact store before the next model
    call: none while the inline ones fit AGENT_WINDOW_BYTES."""
    if rec.inline <= AGENT_WINDOW_BYTES or len(rec.messages) <= KEEP_INLINE:
        return 0
    return len(rec.messages) - KEEP_INLINE


def moved_out(rec: AgentRecord, count: int, ref: dict[str, Any]) -> None:
    """The first `count` inline messages are safely in chunk `ref`."""
    rec.chunks.append(ref)
    rec.inline -= sum(m.size for m in rec.messages[:count])
    del rec.messages[:count]


def assistant(content: Any, calls: list[AgentCall]) -> AgentMessage:
    """The model's turn, its calls as it asked for them (updated with what ran, see `ran`)."""
    tool_calls = [{"id": c.call_id, "name": c.function, "arguments": c.proposed} for c in calls]
    return AgentMessage(role="assistant", content=content, tool_calls=tool_calls or None)


def ran(rec: AgentRecord, call: AgentCall) -> None:
    """The assistant message carries the arguments that ran (they differ only by a modify)."""
    if not call.changed or call.arguments is None:
        return
    for m in reversed(rec.messages):
        for tc in m.tool_calls or []:
            if tc.get("id") == call.call_id:
                tc["arguments"] = call.arguments
                return


def tool_message(call: AgentCall, content: dict[str, Any], result: Result | None) -> AgentMessage:
    """What the model is told of a call's end: a JSON object (its `result`, read from the
    artifact store when the tool kept it there, or why it did not run)."""
    artifact = result.artifact if result is not None and result.ok else None
    if artifact is not None:
        content = {**content, "result": _marker(artifact)}
    return AgentMessage(
        role="tool", content=content, tool_call_id=call.call_id, n=call.n, artifact=artifact
    )


def result_content(call: AgentCall, result: Result, comment: str | None) -> dict[str, Any]:
    """A call that ran: its result, and when an approver changed it, the arguments that ran."""
    content: dict[str, Any] = {"result": result.output}
    if call.changed:
        content["arguments_changed_by_approver"] = {
            "by": ", ".join(call.gate.decided_by) if call.gate is not None else "",
            "arguments": call.arguments,
            "proposed": call.proposed,
            **({"comment": comment} if comment else {}),
        }
    return content
