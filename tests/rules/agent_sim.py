"""An agent step driven by hand: the model's replies, the checks and the tools' results fed to
the pure rules, with a clock the test moves."""

from __future__ import annotations

from typing import Any

from activities.models import AgentCheckResult, CallCheck
from tests.rules.sim import Sim
from workflows.rules import agent
from workflows.rules.agent_state import AgentCall, AgentRecord
from workflows.rules.records import Result
from workflows.rules.turn import AskModel, CallTool, CheckCalls, StoreTranscript

# Tools as validation pins them (the rules never see the registry).
READ = "{tool: ops.read, resolved_tool: ops.read@1.0.0, risk: low, parameters: {type: object}}"
RESTART = (
    "{tool: ops.restart, resolved_tool: ops.restart@1.0.0, risk: high, parameters: "
    '{type: object}, approval: {approvers: ["role:ops"]}}'
)
PAGE = (
    "{tool: ops.page, resolved_tool: ops.page@1.0.0, risk: medium, policy: deny, "
    "parameters: {type: object}}"
)

AGENT = f"""
name: a
steps:
  - id: triage
    with: {{temperature: 0}}
    agent:
      instructions: be careful
      input: "${{input.service}} is slow"
      tools:
        - {READ}
        - {RESTART}
        - {PAGE}
      max_turns: 5
"""


def agent_def(*tools: str, **keys: Any) -> str:
    """AGENT with other tool entries and agent keys (`key: value` lines)."""
    text = AGENT
    if tools:
        text = text.replace(f"        - {READ}\n        - {RESTART}\n        - {PAGE}\n", "")
        lines = "".join(f"        - {t}\n" for t in tools)
        text = text.replace("      tools:\n", "      tools:\n" + lines)
    for key, value in keys.items():
        text = text.replace("      max_turns: 5", f"      max_turns: 5\n      {key}: {value}")
    return text


class AgentSim(Sim):
    step_id = "triage"

    @property
    def rec(self) -> AgentRecord:
        found = self.step(self.step_id).agent
        assert found is not None
        return found

    def call(self, n: int) -> AgentCall:
        found = self.rec.call(n)
        assert found is not None
        return found

    def asks(self) -> list[AskModel]:
        return [e for e in self.effects if isinstance(e, AskModel)]

    def tools_run(self) -> list[CallTool]:
        return [e for e in self.effects if isinstance(e, CallTool)]

    def checks(self) -> list[CheckCalls]:
        return [e for e in self.effects if isinstance(e, CheckCalls)]

    def stores(self) -> list[StoreTranscript]:
        return [e for e in self.effects if isinstance(e, StoreTranscript)]

    def reply(
        self, *calls: tuple[str, Any], content: str | None = None, tokens: int = 15
    ) -> list[Any]:
        """The model answers the turn out with these calls (or with `content` alone)."""
        raw = [{"id": f"c{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(calls)]
        output = {"content": content, "tool_calls": raw, "usage": {"total_tokens": tokens}}
        agent.replied(
            self.state, self.step_id, self.rec.turn, Result(round=0, ok=True, output=output)
        )
        return self.advance()

    def check(self, risks: dict[int, str] | None = None, **issues: list[str]) -> list[Any]:
        """The check answers: each call in it fits (`risks`, else low), but `c<n>=[...]`."""
        asked = self.checks()[-1].check
        found = AgentCheckResult(
            calls=[
                CallCheck(
                    n=c.n, risk=(risks or {}).get(c.n, "low"), issues=issues.get(f"c{c.n}", [])
                )
                for c in asked.calls
            ],
            reply_issues=issues.get("reply", []),
            reply_json=None if issues.get("reply") else {"ok": True},
        )
        agent.checked(self.state, self.step_id, self.rec.turn, found)
        return self.advance()

    def done(self, n: int, output: Any = None, ok: bool = True, error: str = "") -> list[Any]:
        """Call `n`'s tool came back."""
        result = Result(
            round=0, ok=ok, output=output if output is not None else {"n": n}, error=error or None
        )
        agent.returned(self.state, self.step_id, n, result)
        return self.advance()

    def stored(self, path: str = "agent/x.json") -> list[Any]:
        ref = {"uri": f"file:///{path}", "path": path, "size": 1, "sha256": "0" * 64}
        agent.stored(self.state, self.step_id, ref)
        return self.advance()

    def tool_messages(self) -> list[Any]:
        return [m.content for m in self.rec.messages if m.role == "tool"]
