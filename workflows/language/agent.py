"""An agent step's definition (the `agent:` key): what the model is told, the tools it may call
and how each of its calls is decided (run, ask a person, refuse), and the loop's bounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from workflows.language.approval import ApprovalSpec
from workflows.language.limits import (
    DEFAULT_AGENT_TURNS,
    MAX_AGENT_TOOLS,
    MAX_AGENT_TURNS,
    MAX_TEXT_CHARS,
)
from workflows.language.types import Expression, Name, Text
from workflows.language.types import Strict as _Strict

# How a proposed call is decided: run it, open a gate for it, or refuse it.
Policy = Literal["auto", "approve", "deny"]
# From the least to the most careful: a `when` that cannot be evaluated takes the most careful.
STRICTNESS: tuple[Policy, ...] = ("auto", "approve", "deny")
Risk = Literal["low", "medium", "high"]
# What an approver may do at an agent call gate (a step's gate offers more).
CALL_ACTIONS = ("approve", "reject", "modify", "cancel")
# What an agent step's `with` may set: llm.chat's options for each model turn.
MODEL_OPTIONS = ("temperature", "max_tokens", "timeout_s")
# Keys of a step that mean nothing to an agent step.
NOT_FOR_AGENTS = (
    "for_each",
    "repeat",
    "check",
    "local",
    "max_parallel",
    "max_output_bytes",
    "total_timeout",
)


def function_name(tool: str) -> str:
    """The function the model calls for a tool: `http.request` (any version) -> `http_request`."""
    return tool.partition("@")[0].replace(".", "_")


class AgentToolSpec(_Strict):
    """A tool the model may call, and how its calls are decided."""

    tool: Name = Field(description="a registered tool: name or name@version")
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="arguments the step fixes: the model cannot set them (it is told so)",
    )
    approval: ApprovalSpec | None = Field(None, description="who decides this tool's calls")
    policy: Policy | None = Field(None, description="auto | approve | deny (when `when` holds)")
    when: Expression | None = Field(
        None, description="condition over the call's `args`: `policy` applies when it holds"
    )
    # Pinned at validation from the registry: what runs, what the model is offered.
    resolved_tool: str | None = Field(None, description="name@version pinned at validation")
    description: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    parameters: dict[str, Any] | None = Field(
        None, description="the tool's input schema without the fixed arguments"
    )
    risk: Risk | None = Field(None, description="the tool's risk; none: it depends on the call")
    local: bool | None = Field(None, description="runs as a local activity")

    @property
    def name(self) -> str:
        return self.tool.partition("@")[0]

    @property
    def function(self) -> str:
        return function_name(self.tool)

    @property
    def ref(self) -> str:
        return self.resolved_tool or self.tool


class AgentSpec(_Strict):
    """A model in a loop: each turn an llm.chat call, each call it asks for decided by policy."""

    instructions: Text = Field(description="the system message, sent as written")
    input: Any = Field(None, description="the first user message; references allowed")
    tools: list[AgentToolSpec] = Field(min_length=1, max_length=MAX_AGENT_TOOLS)
    policy: Policy | None = Field(
        None, description="the step's default for its tools (else by risk: high -> approve)"
    )
    max_turns: int = Field(DEFAULT_AGENT_TURNS, ge=1, le=MAX_AGENT_TURNS)
    max_total_tokens: int | None = Field(
        None, ge=1, le=1_000_000_000, description="tokens of all turns together"
    )
    max_tool_errors: int = Field(
        3, ge=0, le=100, description="failed or malformed calls told to the model, at most"
    )
    resolved_model: str | None = Field(None, description="llm.chat@version pinned at validation")

    @field_validator("tools", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """A tool given by name alone is an entry with nothing but its name."""
        if isinstance(value, list):
            return [{"tool": v} if isinstance(v, str) else v for v in value]
        return value

    def entry(self, function: str) -> AgentToolSpec | None:
        """The tool entry the model's function name stands for, if offered."""
        return next((e for e in self.tools if e.function == function), None)

    def default_policy(self, risk: Risk | None) -> tuple[Policy, str]:
        """The policy of a call no entry's `policy` decides, and why."""
        if self.policy is not None:
            return self.policy, f"the step's policy is {self.policy}"
        if risk == "high":
            return "approve", "the tool's risk is high"
        return "auto", f"the tool's risk is {risk or 'not high'}"


def may_open_gates(agent: AgentSpec, entry: AgentToolSpec) -> bool:
    """Whether a call of this entry could wait at a gate (so someone must be named to decide)."""
    if entry.policy == "approve" or entry.when is not None:
        return True
    if entry.policy is not None:
        return False
    default, _ = agent.default_policy(entry.risk)
    return default == "approve" or (agent.policy is None and entry.risk is None)


def agent_conflicts(values: Mapping[str, Any]) -> list[str]:
    """An agent step's fields that do not fit together (raw values, like step_conflicts)."""
    agent = values.get("agent")
    if agent is None:
        return []
    out = [f"an agent step takes no {k!r}" for k in NOT_FOR_AGENTS if values.get(k) is not None]
    approval = values.get("approval")
    for where, spec in [("approval", approval), *_entry_approvals(agent)]:
        fields = spec if isinstance(spec, Mapping) else getattr(spec, "__dict__", {})
        if (fields.get("stage") or "before") != "before":
            out.append(f"{where}: an agent's call gates are before the call (stage: before)")
        if fields.get("auto_approve_if") is not None:
            out.append(f"{where}: auto_approve_if does not apply to calls: use policy and when")
    with_ = values.get("with")
    if isinstance(with_, Mapping):
        extra = sorted(set(with_) - set(MODEL_OPTIONS))
        if extra:
            out.append(
                f"with: an agent step's `with` sets the model's {', '.join(MODEL_OPTIONS)}; "
                f"not {', '.join(extra)}"
            )
    return out


def _entry_approvals(agent: Any) -> list[tuple[str, Any]]:
    tools = agent.get("tools") if isinstance(agent, Mapping) else getattr(agent, "tools", None)
    out = []
    for k, entry in enumerate(tools if isinstance(tools, list) else []):
        spec = (
            entry.get("approval")
            if isinstance(entry, Mapping)
            else getattr(entry, "approval", None)
        )
        if spec is not None:
            out.append((f"agent.tools[{k}].approval", spec))
    return out
