"""llm.chat against a small OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
from tests.tools.chat import ScriptedChat
from tests.tools.conftest import make_call
from tests.tools.server import LocalServer, Reply, Seen, json_reply

API_KEY = "sk-test-0123456789"
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def completions(seen: Seen) -> Reply:
    """Answers like an OpenAI-compatible endpoint: a tool call when tools are offered,
    schema-shaped JSON when a json_schema is asked for, and 401 for a wrong key."""
    if seen.headers.get("authorization") != f"Bearer {API_KEY}":
        return json_reply({"error": {"message": "bad key"}}, status=401)
    req = seen.json()
    if req.get("tools"):
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})},
                }
            ],
        }
        finish = "tool_calls"
    elif req.get("response_format", {}).get("type") == "json_schema":
        message = {"role": "assistant", "content": json.dumps({"answer": 42})}
        finish = "stop"
    else:
        message = {"role": "assistant", "content": "plain " + req["messages"][-1]["content"]}
        finish = "stop"
    choice = {"index": 0, "message": message, "finish_reason": finish}
    return json_reply({"model": req["model"], "choices": [choice], "usage": USAGE})


@pytest.fixture
def llm_acts(make_acts: Callable[..., ToolActivities], server: LocalServer) -> ToolActivities:
    server.route("POST", "/v1/chat/completions", completions)
    return make_acts(
        stepgate_llm_base_url=server.url("/v1/"),
        stepgate_llm_model="test-model",
        stepgate_llm_api_key=API_KEY,
    )


async def test_chat_returns_tool_call_when_tools_offered(
    llm_acts: ToolActivities, server: LocalServer
) -> None:
    """A tool call comes back with its arguments parsed; the request carried model, tools, key."""
    args = {
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "get_weather",
    }
    call = make_call("llm.chat", args)
    out = (await llm_acts.execute(call)).output
    call_out = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}
    assert out["tool_calls"] == [call_out]
    assert out["content"] is None and out["finish_reason"] == "tool_calls"
    assert out["usage"] == USAGE and out["model"] == "test-model"
    sent = server.seen[0].json()
    assert sent["model"] == "test-model"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert server.seen[0].headers["idempotency-key"] == call.idempotency_key


async def test_chat_parses_content_when_json_schema_requested(
    llm_acts: ToolActivities, server: LocalServer
) -> None:
    """With response_format the JSON reply is returned parsed as `json` (and as the deprecated
    `parsed`), and the schema was sent."""
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    args = {
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "?"}],
        "response_format": {"name": "answer", "json_schema": schema},
        "temperature": 0,
        "max_tokens": 50,
    }
    out = (await llm_acts.execute(make_call("llm.chat", args))).output
    assert out["json"] == {"answer": 42} and out["content"] == '{"answer": 42}'
    assert out["parsed"] == out["json"]  # the deprecated name keeps working
    sent = server.seen[0].json()
    assert sent["response_format"]["json_schema"]["schema"] == schema
    assert (sent["temperature"], sent["max_tokens"]) == (0, 50)


async def test_chat_sends_tool_results_when_conversation_continues(
    llm_acts: ToolActivities, server: LocalServer
) -> None:
    """An assistant tool call and its tool answer are sent back in OpenAI's wire form."""
    args = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
    }
    out = (await llm_acts.execute(make_call("llm.chat", args))).output
    assert out["content"] == "plain sunny"
    wire = server.seen[0].json()["messages"][1]["tool_calls"][0]
    assert wire["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}


async def test_chat_fails_fatally_when_not_configured(acts: ToolActivities) -> None:
    """Without STEPGATE_LLM_BASE_URL/MODEL the call fails and says what to set."""
    args = {"messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("llm.chat", args))
    assert err.value.non_retryable is True and "STEPGATE_LLM_BASE_URL" in err.value.message


async def test_chat_rejects_input_when_model_given(llm_acts: ToolActivities) -> None:
    """The model comes from the worker's settings only; an input `model` is refused by name."""
    args = {"model": "gpt-expensive", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(ApplicationError) as err:
        await llm_acts.execute(make_call("llm.chat", args))
    assert err.value.non_retryable is True and "model: Extra inputs" in err.value.message


async def test_chat_fails_fatally_when_key_is_rejected(
    make_acts: Callable[..., ToolActivities], server: LocalServer
) -> None:
    """A 401 from the provider is not retried, and the key never appears in the message."""
    server.route("POST", "/v1/chat/completions", completions)
    acts = make_acts(
        stepgate_llm_base_url=server.url("/v1"),
        stepgate_llm_model="m",
        stepgate_llm_api_key="sk-wrong-key-value",
    )
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("llm.chat", {"messages": [{"role": "user", "content": "x"}]}))
    assert err.value.non_retryable is True and "HTTP 401" in err.value.message
    assert "sk-wrong-key-value" not in err.value.message


async def test_chat_fails_transiently_when_provider_errors(
    make_acts: Callable[..., ToolActivities], server: LocalServer
) -> None:
    """A 5xx from the provider is retryable."""
    server.route("POST", "/v1/chat/completions", lambda seen: Reply(502, b"upstream down"))
    acts = make_acts(stepgate_llm_base_url=server.url("/v1"), stepgate_llm_model="m")
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("llm.chat", {"messages": [{"role": "user", "content": "x"}]}))
    assert err.value.non_retryable is False and "HTTP 502" in err.value.message


ANSWER_SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "integer"}},
}


def ask_for_answer(schema: dict[str, object] = ANSWER_SCHEMA) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": "The answer?"}],
        "response_format": {"name": "answer", "json_schema": schema},
    }


async def test_chat_fails_transiently_when_reply_breaks_schema(
    make_acts: Callable[..., ToolActivities], server: LocalServer
) -> None:
    """A reply that parses but does not fit response_format.json_schema is a retryable failure
    naming the first mismatch with its path."""
    server.route("POST", "/v1/chat/completions", ScriptedChat({"answer": "forty-two"}))
    acts = make_acts(stepgate_llm_base_url=server.url("/v1"), stepgate_llm_model="m")
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("llm.chat", ask_for_answer()))
    assert err.value.type == "LlmSchemaMismatch" and err.value.non_retryable is False
    assert "output.json.answer: 'forty-two' is not of type 'integer'" in err.value.message


async def test_chat_refuses_unsafe_schema_before_calling_model(
    make_acts: Callable[..., ToolActivities], server: LocalServer
) -> None:
    """A response_format schema RE2 cannot run fails without a retry and without a paid call."""
    chat = ScriptedChat({"answer": 1})
    server.route("POST", "/v1/chat/completions", chat)
    acts = make_acts(stepgate_llm_base_url=server.url("/v1"), stepgate_llm_model="m")
    schema = {"type": "object", "properties": {"answer": {"type": "string", "pattern": "(a)\\1"}}}
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("llm.chat", ask_for_answer(schema)))
    assert err.value.type == "InvalidToolInput" and err.value.non_retryable is True
    assert "properties.answer.pattern: pattern not supported" in err.value.message
    assert chat.calls == 0


async def test_chat_keeps_arguments_nested_too_deep_as_the_models_text(
    make_acts: Callable[..., ToolActivities], server: LocalServer
) -> None:
    """A tool call whose arguments nest past the document depth bound (or past what the parser
    takes at all) comes back as the model's text, which an agent refuses as not an object: no
    deep structure reaches workflow code."""
    deep = "[" * 100 + "]" * 100
    deeper = "[" * 5_000 + "]" * 5_000

    def answer(seen: Seen) -> Reply:
        calls = [
            {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": a}}
            for i, a in enumerate((deep, deeper, '{"ok": 1}'))
        ]
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
        return json_reply({"model": "m", "choices": [choice], "usage": USAGE})

    server.route("POST", "/v1/chat/completions", answer)
    acts = make_acts(stepgate_llm_base_url=server.url("/v1/"), stepgate_llm_model="m")
    args = {"messages": [{"role": "user", "content": "go"}]}
    out = (await acts.execute(make_call("llm.chat", args))).output
    assert [c["arguments"] for c in out["tool_calls"]] == [deep, deeper, {"ok": 1}]
