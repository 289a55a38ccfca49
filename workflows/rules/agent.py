"""An agent step's loop: each turn the model is asked (an llm.chat call) with the conversation so
far; each call it asks for is checked, decided by policy (run, gate, refuse), run as decided, and
its end told to the model; the next turn waits until every call of the turn is final. The loop
ends with a reply (checked against `output_schema` when given) or fails naming the bound it met.

Pure: the scheduler moves an agent unit through `move` on every pass; what comes back from the
shell is recorded by `replied`, `checked`, `returned` and `stored`. Each call's own phases (its
policy, its gate, its result) are in agent_calls.py, the messages in agent_transcript.py."""

from __future__ import annotations

from typing import Any

from activities.documents import canonical_json
from activities.models import AgentCheck, AgentCheckResult, TranscriptWrite
from workflows.language.agent import AgentSpec
from workflows.language.definition import StepSpec
from workflows.language.durations import parse_duration
from workflows.language.limits import (
    AGENT_REPLY_INLINE_BYTES,
    MAX_AGENT_CALLS,
    MAX_REPLY_REPAIRS,
)
from workflows.language.refs import RefError
from workflows.names import StepState
from workflows.rules import agent_calls as calls
from workflows.rules import agent_transcript as talk
from workflows.rules.agent_state import AgentMessage, AgentRecord, Fixed
from workflows.rules.outcomes import fail, finish, set_output
from workflows.rules.records import Result
from workflows.rules.state import RunData, StepRecord
from workflows.rules.turn import AskModel, CheckCalls, StopCalls, StoreTranscript, Turn
from workflows.rules.votes import SYSTEM_ACTOR, close

__all__ = ["begin", "checked", "move", "replied", "returned", "stored", "wind_down"]

returned = calls.returned


def begin(t: Turn, spec: StepSpec, unit: StepRecord) -> None:
    """An agent step whose needs are met: its input and its tools' fixed arguments resolved (the
    definition's own text: the only references an agent resolves), its first turn next."""
    agent = spec.agent
    if agent is None:
        return
    scope = t.scope(unit)
    try:
        first = scope.resolve(agent.input)
        fixed: dict[str, Fixed] = {}
        for entry in agent.tools:
            args, slots = scope.resolve_slots(entry.with_)
            fixed[entry.function] = Fixed(args=args, slots=slots)
    except RefError as err:
        fail(t, spec, unit, str(err))
        return
    rec = AgentRecord(fixed=fixed)
    if spec.timeout:
        rec.deadline = t.now + parse_duration(spec.timeout)
    talk.add(rec, AgentMessage(role="system", content=agent.instructions))
    if first is not None:
        talk.add(rec, AgentMessage(role="user", content=talk.as_text(first)))
    unit.agent, unit.phase, unit.state = rec, "agent", StepState.RUNNING


def move(t: Turn, spec: StepSpec, unit: StepRecord) -> bool:
    """Act on whatever came back, then ask what comes next; whether anything moved."""
    rec = unit.agent
    if rec is None or spec.agent is None:
        return False
    moved = False
    if rec.stored is not None:
        _stored(rec)
        moved = True
    if rec.reply is not None:
        _replied(t, spec, unit, rec, rec.reply)
        moved = True
    if rec.checked is not None and unit.phase == "agent":
        _checked(t, spec, unit, rec, rec.checked)
        moved = True
    for call in list(rec.calls):
        if unit.phase == "agent":
            moved |= calls.move(t, spec, unit, call)
    if unit.phase != "agent":
        return True
    if rec.ending is None and calls.too_many_errors(spec, rec):
        end(t, unit, "failed", message=calls.errors_message(spec, rec))
        moved = True
    if rec.ending is None and rec.deadline is not None and t.now >= rec.deadline:
        end(t, unit, "failed", message=f"the agent did not finish within timeout {spec.timeout}")
        moved = True
    moved |= _next(t, spec, unit, rec)
    if unit.phase == "agent":
        waiting = any(c.gate is not None and c.gate.open for c in rec.calls)
        unit.state = StepState.WAITING if waiting else StepState.RUNNING
    return moved


def _next(t: Turn, spec: StepSpec, unit: StepRecord, rec: AgentRecord) -> bool:
    """With nothing out: end the loop, or tell the model how the turn's calls ended, move old
    messages out, and ask the next turn."""
    if rec.out or (rec.final is not None and rec.checking):
        return False
    if rec.ending is not None:
        return _close(t, spec, unit, rec)
    if any(not c.final for c in rec.calls):
        return False
    told = calls.tell(rec)
    if t.hold or t.state.stop is not None or t.state.paused:
        return told
    count = talk.due(rec)
    if count:
        messages, slots = talk.head(rec, count)
        name = f"agent/{unit.id}/chunk-{len(rec.chunks) + 1}.json"
        rec.storing = count
        t.effects.append(StoreTranscript(unit.id, _write(t, name, messages, slots)))
        return True
    rec.turn += 1
    rec.asking = True
    messages, slots = talk.wire(rec)
    args: dict[str, Any] = {**(unit.args or {}), "messages": messages, "tools": _offered(spec)}
    t.effects.append(AskModel(unit.id, rec.turn, args, slots))
    return True


def _offered(spec: StepSpec) -> list[dict[str, Any]]:
    agent = spec.agent
    return [
        {"name": e.function, "description": e.description or "", "parameters": e.parameters}
        for e in (agent.tools if agent is not None else [])
        if e.parameters is not None
    ]


def _write(t: Turn, name: str, messages: list[Any], slots: list[Any], parts: Any = ()) -> Any:
    return TranscriptWrite(
        workflow_id=t.ctx.workflow_id, name=name, parts=list(parts), messages=messages, slots=slots
    )


def _replied(t: Turn, spec: StepSpec, unit: StepRecord, rec: AgentRecord, result: Result) -> None:
    """The model answered (or could not be asked): its calls proposed, or its reply final."""
    rec.asking, rec.reply = False, None
    agent = spec.agent
    if result.cancelled or agent is None:
        finish(t, unit, StepState.CANCELLED, reason="run stopped")
        return
    out = result.output
    if not result.ok:
        _failed(
            t, unit, f"the model could not be asked at turn {rec.turn}: {result.error or 'failed'}"
        )
        return
    if result.artifact is not None or not isinstance(out, dict):
        _failed(
            t,
            unit,
            f"the model's reply at turn {rec.turn} takes more than "
            f"{AGENT_REPLY_INLINE_BYTES} bytes",
        )
        return
    usage = out.get("usage")
    used = usage.get("total_tokens") if isinstance(usage, dict) else None
    rec.tokens += used if isinstance(used, int) and used > 0 else 0
    content = out.get("content") if isinstance(out.get("content"), str) else None
    raw = out.get("tool_calls")
    proposed = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    bound = _bound(agent, rec, len(proposed))
    if bound is not None:
        talk.add(rec, talk.assistant(content, []))
        _failed(t, unit, bound)
        return
    if not proposed:
        talk.add(rec, talk.assistant(content, []))
        if spec.output_schema is None:
            end(t, unit, "succeeded", output=content)
            return
        rec.final, rec.checking = content or "", True
        check = AgentCheck(reply=rec.final, json_schema=spec.output_schema)
        t.effects.append(CheckCalls(unit.id, rec.turn, check))
        return
    made = [calls.propose(t, spec, unit, rec, raw_call, k) for k, raw_call in enumerate(proposed)]
    talk.add(rec, talk.assistant(content, made))
    check = AgentCheck(calls=calls.to_check(made))
    if check.calls:
        rec.checking = True
        t.effects.append(CheckCalls(unit.id, rec.turn, check))


def _bound(agent: AgentSpec, rec: AgentRecord, asked: int) -> str | None:
    """The bound a reply asking for `asked` calls takes the loop past, said as the step fails."""
    if agent.max_total_tokens is not None and rec.tokens > agent.max_total_tokens:
        return (
            f"max_total_tokens ({agent.max_total_tokens}) exceeded: "
            f"{rec.tokens} tokens in {rec.turn} turns"
        )
    if asked and len(rec.calls) + asked > MAX_AGENT_CALLS:
        return f"the agent asked for more than {MAX_AGENT_CALLS} calls at turn {rec.turn}"
    if asked and rec.turn >= agent.max_turns:
        return f"max_turns ({agent.max_turns}) reached: the model still asked for tools at turn {rec.turn}"
    return None


def _failed(t: Turn, unit: StepRecord, message: str) -> None:
    end(t, unit, "failed", message=message)


def _checked(
    t: Turn, spec: StepSpec, unit: StepRecord, rec: AgentRecord, found: AgentCheckResult
) -> None:
    """The check came back: each call refused or decided, or the final reply taken (or sent
    back to the model with what is wrong, a bounded number of times)."""
    rec.checking, rec.checked = False, None
    agent = spec.agent
    if rec.final is None or agent is None:
        calls.decide_all(t, spec, unit, rec, found)
        return
    rec.final = None
    if not found.reply_issues:
        end(t, unit, "succeeded", output=found.reply_json)
        return
    issues = "; ".join(found.reply_issues)
    if rec.repairs >= MAX_REPLY_REPAIRS or rec.turn >= agent.max_turns:
        end(t, unit, "failed", message=f"the reply does not follow output_schema: {issues}")
        return
    rec.repairs += 1
    said = f"Your reply does not follow the required JSON schema: {issues}. Reply again with "
    talk.add(
        rec, AgentMessage(role="user", content=said + "JSON that follows it, and nothing else.")
    )


def end(
    t: Turn, unit: StepRecord, how: str, *, output: Any = None, message: str | None = None
) -> None:
    """The loop ends (succeeded with `output`, or failed with `message`): nothing new starts,
    open call gates close, what is out is called back; the transcript is written next."""
    rec = unit.agent
    if rec is None or rec.ending is not None:
        return
    rec.ending = "succeeded" if how == "succeeded" else "failed"
    rec.end_message = message
    if how == "succeeded":
        size = len(canonical_json(output))
        set_output(unit, output, None, None)
        unit.kept = size
        t.state.inline_bytes += size
    for call in rec.calls:
        if call.gate is not None and call.gate.open:
            close(call.gate, "cancel", [SYSTEM_ACTOR], t.now, None)
        if not call.final and not call.out:
            calls.cancel(t, call, "the agent's loop ended first")
    if rec.out:
        t.effects.append(StopCalls(unit.id))


def _close(t: Turn, spec: StepSpec, unit: StepRecord, rec: AgentRecord) -> bool:
    """An ended loop: its whole transcript written (unless the run stopped), then its end."""
    if rec.transcript is None and t.state.stop is None and not t.hold:
        messages, slots = talk.head(rec, len(rec.messages))
        name = f"agent/{unit.id}/transcript.json"
        rec.writing = True
        t.effects.append(StoreTranscript(unit.id, _write(t, name, messages, slots, rec.chunks)))
        return True
    if rec.transcript is None and t.state.stop is None:
        return False  # held: the run continues as new first
    if rec.ending == "succeeded":
        finish(t, unit, StepState.SUCCEEDED)
    else:
        fail(t, spec, unit, rec.end_message or "the agent failed")
    return True


def _stored(rec: AgentRecord) -> None:
    ref, rec.stored = rec.stored, None
    if ref is None:
        return
    if rec.writing:
        rec.writing, rec.transcript = False, ref
    elif rec.storing:
        talk.moved_out(rec, rec.storing, ref)
        rec.storing = 0


def wind_down(t: Turn) -> None:
    """The run stopped: every agent's open call gates close, and an agent with nothing out
    ends (its transcript is not written: the run's calls are being cancelled)."""
    for unit in t.state.units():
        rec = unit.agent
        if rec is None or unit.phase != "agent":
            continue
        for call in rec.calls:
            if call.gate is not None and call.gate.open:
                close(call.gate, "cancel", [SYSTEM_ACTOR], t.now, None)
            if not call.final and not call.out:
                calls.cancel(t, call, "run stopped")
        if not rec.out:
            finish(t, unit, StepState.CANCELLED, reason="run stopped")
        else:
            unit.state = StepState.RUNNING


def withdraw(t: Turn, effect: Any) -> None:
    """A call asked for in a pass that ended with the run stopped is never made."""
    unit = t.state.unit(effect.step)
    rec = unit.agent if unit is not None else None
    if rec is None:
        return
    if isinstance(effect, AskModel):
        rec.asking = False
    elif isinstance(effect, CheckCalls):
        rec.checking = False
    elif isinstance(effect, StoreTranscript):
        rec.storing, rec.writing = 0, False
    else:
        call = rec.call(getattr(effect, "n", 0))
        if call is not None and call.out:
            calls.cancel(t, call, "run stopped before the call was made")


def _record(state: RunData, unit_id: str) -> AgentRecord | None:
    unit = state.unit(unit_id)
    return unit.agent if unit is not None and unit.phase == "agent" else None


def replied(state: RunData, unit_id: str, turn: int, result: Result) -> None:
    rec = _record(state, unit_id)
    if rec is not None and rec.asking and rec.turn == turn and rec.reply is None:
        rec.reply = result


def checked(state: RunData, unit_id: str, turn: int, result: AgentCheckResult) -> None:
    rec = _record(state, unit_id)
    if rec is not None and rec.checking and rec.turn == turn and rec.checked is None:
        rec.checked = result


def stored(state: RunData, unit_id: str, ref: dict[str, Any] | None) -> None:
    """A write came back with where it stored the messages (None: it was cancelled)."""
    rec = _record(state, unit_id)
    if rec is None or not (rec.storing or rec.writing) or rec.stored is not None:
        return
    if ref is None:
        rec.storing, rec.writing = 0, False
    else:
        rec.stored = ref
