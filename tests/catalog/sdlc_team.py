"""Stand-ins for what greenfield_sdlc talks to, on one loopback server: the model behind each
role (an OpenAI-compatible endpoint that answers by the role its system message names) and a
deployment service. Each test scripts the replies it needs and reads what each role was asked."""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from temporalio.client import Client

from activities import default_registry
from activities.config import Settings
from tests.conftest import ROOT
from tests.support.api import serve_app
from tests.tools.server import LocalServer, Reply, Seen, json_reply
from worker import build_worker

STORIES = [
    {"id": "US-1", "title": "Record an expense", "acceptance": ["an expense has an amount"]},
    {"id": "US-2", "title": "Split it", "acceptance": ["each member owes a share"]},
]
ROLES = (
    "analyst",
    "architect",
    "security reviewer",
    "developer",
    "tester",
    "technical writer",
    "deployer",
)


class Team:
    """The models and the deployment service of one greenfield_sdlc run."""

    def __init__(self, risk: str = "high") -> None:
        self.server = LocalServer()
        self.risk = risk
        # The tester's verdict each round (the last one repeats), and the deployment's states.
        self.verdicts: list[dict[str, Any]] = [
            {"passed": True, "findings": "", "failed_stories": []}
        ]
        self.rollout = ["running", "succeeded"]
        # What the developer writes each round (None: two files of its own).
        self.files: list[dict[str, Any]] | None = None
        self.polls = 0
        self.prompts: dict[str, list[str]] = defaultdict(list)
        self.server.route("POST", "/v1/chat/completions", self._chat)
        self.server.route("POST", "/deploy/deployments", self._deploy)
        self.server.route("GET", "/deploy/deployments/dep-1", self._poll)
        self.server.route(
            "POST", "/deploy/deployments/dep-1/rollback", lambda s: json_reply({"ok": True})
        )

    def __enter__(self) -> Team:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def deploy_url(self) -> str:
        return self.server.url("/deploy")

    def seen(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.server.seen if s.method == method and s.path == path]

    def _deploy(self, seen: Seen) -> Reply:
        return json_reply({"id": "dep-1", "status": "running"}, 202)

    def _poll(self, seen: Seen) -> Reply:
        state = self.rollout[min(self.polls, len(self.rollout) - 1)]
        self.polls += 1
        return json_reply({"id": "dep-1", "status": state})

    def _chat(self, seen: Seen) -> Reply:
        body = seen.json()
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        role = next(r for r in ROLES if system.startswith(f"You are the {r}"))
        self.prompts[role].append(user)
        content = self.reply(role, system, len(self.prompts[role]))
        message = {"role": "assistant", "content": content}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return json_reply({"model": body["model"], "choices": [choice], "usage": {}})

    def reply(self, role: str, system: str, turn: int) -> str:
        """What `role` answers the `turn`th time it is asked (from 1)."""
        if role == "technical writer":
            kind = "User guide" if "user guide" in system else "Runbook"
            return f"# {kind}\n\nWritten for the design."
        replies: dict[str, Any] = {
            "analyst": {
                "summary": "A ledger of shared expenses",
                "stories": STORIES,
                "non_functional": ["answers within 200 ms"],
            },
            "architect": {
                "components": [
                    {"name": "api", "responsibility": "the HTTP API"},
                    {"name": "ledger", "responsibility": "keeps the expenses"},
                ],
                "interfaces": ["POST /expenses"],
                "risk": self.risk,
                "risk_reasons": ["it handles money"],
            },
            "security reviewer": {
                "threats": ["a member edits another's expense"],
                "mitigations": ["check the owner on every write"],
            },
            "developer": {
                "files": self.files
                or [
                    {"path": "app/main.py", "content": f"# round {turn}\n"},
                    {"path": "tests/test_main.py", "content": "def test_split(): ...\n"},
                ],
                "notes": f"round {turn}",
            },
            "tester": self.verdicts[min(turn, len(self.verdicts)) - 1],
            "deployer": {"strategy": "rolling", "steps": ["drain", "swap"], "rollback": "swap"},
        }
        return json.dumps(replies[role])


# Who takes part, with the roles the shipped pipelines and the default policy name.
PEOPLE = {
    "olga": ("key-olga-0123456789", ["operator"]),
    "vic": ("key-vic-0123456789", ["viewer"]),
    "root": ("key-root-0123456789", ["admin"]),
    "ada": ("key-ada-0123456789", ["architects", "viewer"]),
    "sam": ("key-sam-0123456789", ["security", "viewer"]),
    "otto": ("key-otto-0123456789", ["ops", "viewer"]),
    "pat": ("key-pat-0123456789", ["peer", "viewer"]),
}


def write_people(path: Path) -> dict[str, str]:
    """The keys file for PEOPLE; principal -> key."""
    path.write_text(
        yaml.safe_dump([{"key": k, "principal": p, "roles": r} for p, (k, r) in PEOPLE.items()])
    )
    return {p: k for p, (k, _) in PEOPLE.items()}


@contextlib.asynccontextmanager
async def stack(
    client: Client, settings: Settings, folder: Path, llm_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A worker and the API over the shipped catalog (definitions/ as it is), with PEOPLE's keys
    and the model at `llm_url`; yields a client of the API and the keys."""
    keys = write_people(folder / "keys.yaml")
    settings = settings.model_copy(
        update={
            "stepgate_api_keys_file": folder / "keys.yaml",
            "stepgate_definitions_dir": ROOT / "definitions",
            "stepgate_llm_base_url": llm_url,
            "stepgate_llm_model": "scripted-1" if llm_url else "",
        }
    )
    registry = default_registry(entry_points=False)
    async with build_worker(client, settings, registry), serve_app(settings, registry) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield http, keys
