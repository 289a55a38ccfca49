"""`llm.chat`: one chat completion from the OpenAI-compatible endpoint the worker is set up for."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from activities import shapes
from activities.context import ToolContext
from activities.documents import json_issues
from activities.errors import fatal, transient
from activities.registry import sends_to_fields, tool
from activities.tools._http import check_status, send, with_idempotency_key

_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class LlmToolCall(BaseModel):
    """A function call the model asked for (also accepted back in an assistant message)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The call id, echoed by the tool message that answers it.")
    name: str = Field(description="The function name.")
    arguments: Any = Field(description="The arguments: parsed JSON, or the raw string if invalid.")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"] = Field(description="Who speaks.")
    content: Any = Field(
        None, description="The message text; any other JSON value is sent as its JSON text."
    )
    name: str | None = Field(None, description="Optional participant name.")
    tool_call_id: str | None = Field(None, description="For role `tool`: the call it answers.")
    tool_calls: list[LlmToolCall] | None = Field(
        None, description="For role `assistant`: calls the model made earlier in the conversation."
    )


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Function name the model may call.")
    description: str = Field("", description="What the function does, for the model.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="JSON Schema of the arguments.",
    )

    @model_validator(mode="before")
    @classmethod
    def _unwrap_openai_form(cls, value: Any) -> Any:
        # Definitions copied from OpenAI docs come wrapped: {"type": "function", "function": ...}.
        if isinstance(value, dict) and value.get("type") == "function" and "function" in value:
            return value["function"]
        return value


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("result", description="A name for the schema.")
    json_schema: dict[str, Any] = Field(
        description="JSON Schema the reply must follow: a reply that does not is retried under "
        "the step's retry policy (LlmSchemaMismatch)."
    )
    strict: bool = Field(True, description="Ask the provider to enforce the schema exactly.")


class LlmChatInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation so far. An element that is itself a list of messages (a "
        "stored part of a long conversation, read in by the activity) is spliced in.",
    )
    tools: list[FunctionDef] = Field(
        default_factory=list, description="Functions the model may call."
    )
    tool_choice: str | None = Field(
        None, description="`auto`, `none`, `required`, or the name of one function in `tools`."
    )
    response_format: ResponseFormat | None = Field(
        None,
        description="Ask for JSON content following a schema; it is parsed, checked against "
        "the schema and returned as `json`.",
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(None, ge=1, description="Bound on the reply's length.")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="Bound on the whole call.")

    @model_validator(mode="before")
    @classmethod
    def _splice(cls, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(value.get("messages"), list):
            spliced: list[Any] = []
            for m in value["messages"]:
                spliced.extend(m if isinstance(m, list) else [m])
            value = {**value, "messages": spliced}
        return value

    @model_validator(mode="after")
    def _choice_names_a_tool(self) -> LlmChatInput:
        names = {t.name for t in self.tools}
        if self.tool_choice not in (None, "auto", "none", "required", *names):
            raise ValueError(f"tool_choice {self.tool_choice!r} is not a function in `tools`")
        return self


class Usage(BaseModel):
    prompt_tokens: int = Field(0, description="Tokens in the prompt.")
    completion_tokens: int = Field(0, description="Tokens in the reply.")
    total_tokens: int = Field(0, description="Both together.")


class LlmChatOutput(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    content: str | None = Field(description="The reply text (null if the model only called tools).")
    json_value: Any = Field(
        None,
        alias="json",
        description="With response_format: the content parsed as JSON, and checked against "
        "response_format.json_schema.",
    )
    parsed: Any = Field(None, description="Deprecated: the same value as `json`.")
    tool_calls: list[LlmToolCall] = Field(description="Function calls the model asked for.")
    finish_reason: str | None = Field(description="Why the model stopped (stop, tool_calls, ...).")
    usage: Usage = Field(description="Token counts reported by the provider.")
    model: str = Field(description="The model that answered.")


def _request_body(inp: LlmChatInput, model: str) -> dict[str, Any]:
    messages = []
    for m in inp.messages:
        msg = m.model_dump(exclude_none=True, exclude={"tool_calls"})
        if not isinstance(msg.get("content", ""), str):
            msg["content"] = json.dumps(msg["content"], ensure_ascii=False)
        if m.tool_calls:
            msg["tool_calls"] = [_wire_call(c) for c in m.tool_calls]
        messages.append(msg)
    body: dict[str, Any] = {"model": model, "messages": messages}
    if inp.tools:
        body["tools"] = [{"type": "function", "function": t.model_dump()} for t in inp.tools]
    if inp.tool_choice in ("auto", "none", "required"):
        body["tool_choice"] = inp.tool_choice
    elif inp.tool_choice:
        body["tool_choice"] = {"type": "function", "function": {"name": inp.tool_choice}}
    if inp.response_format:
        rf = inp.response_format
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": rf.name, "schema": rf.json_schema, "strict": rf.strict},
        }
    if inp.temperature is not None:
        body["temperature"] = inp.temperature
    if inp.max_tokens is not None:
        body["max_tokens"] = inp.max_tokens
    return body


def _wire_call(call: LlmToolCall) -> dict[str, Any]:
    args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": args}}


def _parse_call(raw: dict[str, Any]) -> LlmToolCall:
    fn = raw.get("function") or {}
    args: Any = fn.get("arguments", "")
    try:
        parsed = json.loads(args) if isinstance(args, str) else args
    except (ValueError, RecursionError):
        parsed = args  # keep the raw string: the caller can still see what the model produced
    # Arguments that are not safe JSON data (nested past MAX_DEPTH, NaN) stay the model's text:
    # whoever reads them (an agent step's rules, in workflow code) never walks them.
    if next(json_issues(parsed), None) is not None:
        parsed = args if isinstance(args, str) else json.dumps(args, default=str)[:10_000]
    return LlmToolCall(id=str(raw.get("id", "")), name=str(fn.get("name", "")), arguments=parsed)


# The endpoint is the operator's (settings), never the call's.
@tool("llm.chat", "1.0.0", heartbeat=True, risk="medium", sends_to=sends_to_fields())
async def llm_chat(inp: LlmChatInput, ctx: ToolContext) -> LlmChatOutput:
    """Ask the configured OpenAI-compatible model for one chat completion (tools, JSON schema)."""
    s = ctx.settings
    if not s.stepgate_llm_base_url or not s.stepgate_llm_model:
        raise fatal(
            "llm.chat is not configured on this worker: set STEPGATE_LLM_BASE_URL and "
            "STEPGATE_LLM_MODEL (and STEPGATE_LLM_API_KEY if the endpoint needs one)",
            "LlmNotConfigured",
        )
    if inp.response_format:
        # Refused before the call is paid for: no reply could be checked against this schema.
        problem = await asyncio.to_thread(shapes.unsafe, inp.response_format.json_schema, "")
        if problem:
            raise fatal(
                f"response_format.json_schema is not a safe JSON Schema: {problem}",
                "InvalidToolInput",
            )
    hidden = set(ctx.secret_values)
    headers = with_idempotency_key({"Content-Type": "application/json"}, ctx)
    if s.stepgate_llm_api_key:
        headers["Authorization"] = f"Bearer {s.stepgate_llm_api_key}"
        hidden.add(s.stepgate_llm_api_key)
    url = s.stepgate_llm_base_url.rstrip("/") + "/chat/completions"
    reply = await send(
        ctx,
        "POST",
        url,
        headers=headers,
        content=json.dumps(_request_body(inp, s.stepgate_llm_model)),
        timeout_s=inp.timeout_s,
        max_body_bytes=_MAX_RESPONSE_BYTES,
        secrets=hidden,
    )
    check_status(reply, None, "the LLM endpoint", hidden)
    try:
        data = json.loads(reply.body)
        choice = data["choices"][0]
        message = choice["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (ValueError, KeyError, IndexError, TypeError):
        raise fatal(
            f"the LLM endpoint returned an unexpected body: {reply.text()[:300]!r}",
            "LlmBadResponse",
        ) from None
    content = message.get("content")
    finish = choice.get("finish_reason")
    parsed: Any = None
    if inp.response_format and content is not None:
        try:
            parsed = json.loads(content)
        except ValueError:
            if finish == "length":
                raise fatal(
                    "the model's JSON reply was cut off; raise max_tokens", "LlmTruncated"
                ) from None
            # Another sample may well be valid, so let the retry policy decide.
            raise transient(
                "the model's reply is not the JSON that was asked for", "LlmInvalidJson"
            ) from None
        wrong = await asyncio.to_thread(
            shapes.mismatches, inp.response_format.json_schema, parsed, "output.json"
        )
        if wrong:
            # As with invalid JSON, another sample may fit: the retry policy decides.
            raise transient(
                f"the model's reply does not follow response_format.json_schema: {wrong}",
                "LlmSchemaMismatch",
            )
    return LlmChatOutput(
        content=content,
        json=parsed,
        parsed=parsed,
        tool_calls=[_parse_call(c) for c in message.get("tool_calls") or []],
        finish_reason=finish,
        usage=Usage.model_validate(data.get("usage") or {}),
        model=str(data.get("model") or s.stepgate_llm_model),
    )
