"""A scripted OpenAI-compatible model for the catalog: it answers each role the pipelines
ask for (API designer, developer, reviewer, release engineer) from tests/catalog/sources.py,
and records what each was asked."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.catalog import sources
from tests.tools.server import LocalServer, Reply, Seen, json_reply

ROLES = {
    "You are an API designer": "design",
    "You are a Java developer": "code",
    "You are a Node.js developer": "code",
    "You are a code reviewer": "review",
    "You are a release engineer": "install",
}


class CatalogModel:
    def __init__(self) -> None:
        self.server = LocalServer()
        self.server.route("POST", "/v1/chat/completions", self._chat)
        self.asked: dict[str, list[str]] = {role: [] for role in ROLES.values()}
        self.java = dict(sources.JAVA)
        self.install = sources.INSTALL
        # Paths the developer answers with instead of the one asked for.
        self.renamed: dict[str, str] = {}
        self.findings: list[dict[str, Any]] = [
            {
                "file": "src/main/ItemController.java",
                "line": 27,
                "severity": "minor",
                "message": "parse the body with a JSON parser, not a regular expression",
            }
        ]

    def _chat(self, seen: Seen) -> Reply:
        body = seen.json()
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        role = next(r for prefix, r in ROLES.items() if system.startswith(prefix))
        self.asked[role].append(user)
        reply = getattr(self, f"_{role}")(system, user)
        message = {"role": "assistant", "content": json.dumps(reply)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return json_reply({"model": body["model"], "choices": [choice], "usage": {}})

    def _files(self, user: str) -> dict[str, str]:
        return self.java if "Java package" in user else sources.NODE

    def _design(self, system: str, user: str) -> Any:
        files = self._files(user)
        return {
            "document": sources.ITEMS_API,
            "files": [{"path": p, "purpose": f"the {p.rsplit('/', 1)[1]} file"} for p in files],
        }

    def _code(self, system: str, user: str) -> Any:
        found = re.search(r"Write (\S+) \(", user)
        path = found.group(1) if found else ""
        files = self.java if "Java developer" in system else sources.NODE
        return {"path": self.renamed.get(path, path), "code": files[path]}

    def _review(self, system: str, user: str) -> Any:
        return {"verdict": "pass", "findings": self.findings}

    def _install(self, system: str, user: str) -> Any:
        return {"script": self.install, "notes": "checks the sha256 first"}
