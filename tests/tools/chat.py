"""A scripted OpenAI-compatible chat endpoint: it answers with the given contents in turn."""

from __future__ import annotations

import json
from typing import Any

from tests.tools.server import Reply, Seen, json_reply


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
