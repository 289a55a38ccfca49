"""A scripted OpenAI-compatible chat endpoint: it answers with the given contents in turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.tools.server import LocalServer, Reply, Seen, json_reply


class ScriptedChat:
    """Answers each request with the next content of its script (the last one repeats) and
    counts the requests, so a test can make a model answer badly first and well next."""

    def __init__(self, *contents: Any) -> None:
        self.contents = [c if isinstance(c, str) else json.dumps(c) for c in contents]
        self.calls = 0

    def __call__(self, seen: Seen) -> Reply:
        content = self.contents[min(self.calls, len(self.contents) - 1)]
        self.calls += 1
        message = {"role": "assistant", "content": content}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return json_reply({"model": seen.json()["model"], "choices": [choice], "usage": {}})


# A scripted reply: the final text, or the calls the model asks for, as (function, arguments).
Reply_ = str | list[tuple[str, Any]]
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


class ScriptedAgent:
    """An OpenAI-compatible model for agent steps: turn N (read from the call's idempotency key,
    `.../turn-N`) answers with reply N of its script, the last one repeating, so a retried turn
    answers the same. A reply may also be a function of the request. Every request is recorded
    (its body and key), so a test can read what the model was shown at each turn."""

    def __init__(self, *replies: Reply_ | Any, usage: dict[str, int] | None = None) -> None:
        self.replies = list(replies)
        self.usage = usage or USAGE
        self.requests: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.url = ""  # its base URL while `serving` serves it

    def __call__(self, seen: Seen) -> Reply:
        body = seen.json()
        key = seen.headers.get("idempotency-key", "")
        self.requests.append(body)
        self.keys.append(key)
        turn = key.rpartition("turn-")[2]
        k = int(turn) - 1 if turn.isdigit() else len(self.requests) - 1
        reply = self.replies[min(k, len(self.replies) - 1)]
        if callable(reply):
            reply = reply(body)
        if isinstance(reply, str):
            message: dict[str, Any] = {"role": "assistant", "content": reply}
            finish = "stop"
        else:
            calls = [
                {
                    "id": f"t{k + 1}c{i + 1}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for i, (name, args) in enumerate(reply)
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return json_reply({"model": body["model"], "choices": [choice], "usage": self.usage})

    def shown(self, turn: int) -> list[dict[str, Any]]:
        """The messages the model was sent at `turn` (its last request for that turn)."""
        found = [
            b for b, k in zip(self.requests, self.keys, strict=True) if k.endswith(f"turn-{turn}")
        ]
        return list(found[-1]["messages"]) if found else []

    def tool_results(self, turn: int) -> list[Any]:
        """The tool messages the model was shown at `turn`, their JSON parsed."""
        return [json.loads(m["content"]) for m in self.shown(turn) if m["role"] == "tool"]


@contextmanager
def serving(model: ScriptedAgent) -> Iterator[ScriptedAgent]:
    """`model` answering chat completions on a loopback server; `model.url` is its base URL."""
    server = LocalServer().start()
    server.route("POST", "/v1/chat/completions", model)
    model.url = server.url("/v1/")
    try:
        yield model
    finally:
        server.stop()
