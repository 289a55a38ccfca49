"""The hand-written agent loop a team would write without Stepgate: ask the model (the llm.chat
activity), run each call it asks for (the tool's own activity), append both to the conversation,
until the model replies without calls. No policy, no gates, no status: the floor an agent step's
per-turn overhead is measured against, calling the very same activities on the same worker."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import ToolCall, ToolResult
    from workflows.language.definition import Defaults
    from workflows.language.durations import parse_duration
    from workflows.retries import retry_policy

_DEFAULTS = Defaults()
TIMEOUT = parse_duration(_DEFAULTS.timeout)
HEARTBEAT = parse_duration(_DEFAULTS.heartbeat_timeout or "30s")
RETRY = retry_policy(None, _DEFAULTS)


@workflow.defn(name="AgentBaselineWorkflow")
class AgentBaselineWorkflow:
    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        wf = workflow.info().workflow_id
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": inp["instructions"]},
            {"role": "user", "content": inp["input"]},
        ]
        n = 0
        for turn in range(1, inp["max_turns"] + 1):
            asked = {"messages": messages, "tools": inp["tools"]}
            reply = await self._call("llm.chat", asked, f"{wf}/agent/turn-{turn}", wf)
            out = reply.output if isinstance(reply.output, dict) else {}
            calls = out.get("tool_calls") or []
            messages.append(
                {"role": "assistant", "content": out.get("content"), "tool_calls": calls or None}
            )
            if not calls:
                return {"reply": out.get("content"), "turns": turn, "calls": n}
            for c in calls:
                n += 1
                tool = inp["functions"][c["name"]]
                res = await self._call(tool, c["arguments"], f"{wf}/agent/call-{n}", wf)
                messages.append(
                    {"role": "tool", "tool_call_id": c["id"], "content": {"result": res.output}}
                )
        return {"reply": None, "turns": inp["max_turns"], "calls": n}

    async def _call(self, tool: str, args: dict[str, Any], key: str, wf: str) -> ToolResult:
        call = ToolCall(
            tool=tool, version="", step_id="agent", workflow_id=wf, args=args,
            idempotency_key=key, slots=[],
        )  # fmt: skip
        result: ToolResult = await workflow.execute_activity(
            tool,
            call,
            result_type=ToolResult,
            start_to_close_timeout=TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=RETRY,
        )
        return result
