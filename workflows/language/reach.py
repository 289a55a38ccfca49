"""What a definition can reach: every tool it can call and every task queue it names, each with
its path. The one list a plan is governed by: the allow-list check, the count `max_steps` bounds
and the risk scoring all read `calls`, so a tool cannot be called without being both allowed and
scored. Pure, and tolerant of a definition that is not valid yet (it reads the JSON shape, before
or after validation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from activities.documents import format_loc
from workflows.language.definition import NotifySpec

# `step`: the step's own tool (also each for_each item and repeat iteration); `compensate`: its
# compensation; `notify`: its gate's notification (opened, reminders, escalation); `pipeline`: a
# catalog pipeline it runs as a child; `plan`: a tool a definition made at run time may call;
# `agent`: a tool an agent step's model may call (with arguments the model chooses); `model`: the
# tool an agent step asks its model through, once a turn.
Kind = Literal["step", "compensate", "notify", "pipeline", "plan", "agent", "model"]
KINDS: dict[Kind, str] = {
    "step": "step",
    "compensate": "compensation",
    "notify": "gate notification",
    "pipeline": "child pipeline",
    "plan": "run-time plan",
    "agent": "agent tool",
    "model": "agent model",
}
# The tool each agent turn asks the model through.
MODEL_TOOL = "llm.chat"
# A gate's `notify` that names no tool calls this one (the model's default, read from it).
DEFAULT_NOTIFY_TOOL: str = NotifySpec.model_fields["tool"].default


@dataclass(frozen=True)
class Call:
    """One tool (or child pipeline) a definition can call, as written at `path`."""

    path: str
    kind: Kind
    step: str | None
    tool: str
    pinned: str | None = None
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The tool's name without a version."""
        return self.tool.partition("@")[0]

    @property
    def ref(self) -> str:
        """The tool as it will run: pinned at validation, else as written."""
        return self.pinned or self.tool


def calls(raw: Any) -> list[Call]:
    """Every call `raw` (a definition's JSON shape) can make, in step order: each step's tool or
    child pipeline, its compensation, its gate's notification; for a plan made at run time, each
    tool its `allowed_tools` lets that plan call (its own check applies the same list to it)."""
    steps = raw.get("steps") if isinstance(raw, dict) else None
    out: list[Call] = []
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict):
            out += _step_calls(i, step)
    return out


def model_calls(raw: Any) -> list[Call]:
    """The calls of `raw` that ask the LLM endpoint (`llm.chat`): a step's tool, a compensation,
    a gate notification, an agent step's model turns or a tool its model may call. A run-time
    plan's `allowed_tools` are not counted: they say what a plan may call, not that it will."""
    return [c for c in calls(raw) if c.name == MODEL_TOOL and c.kind not in ("plan", "pipeline")]


def task_queues(raw: Any) -> list[tuple[str, str]]:
    """Every task queue `raw` names (its defaults', each step's), with its path (a value that is
    not text is the validator's to refuse)."""
    if not isinstance(raw, dict):
        return []
    found: list[tuple[str, str]] = []
    defaults = raw.get("defaults")
    if isinstance(defaults, dict) and isinstance(defaults.get("task_queue"), str):
        found.append(("defaults.task_queue", defaults["task_queue"]))
    steps = raw.get("steps")
    for i, step in enumerate(steps if isinstance(steps, list) else []):
        if isinstance(step, dict) and isinstance(step.get("task_queue"), str):
            found.append((format_loc(("steps", i, "task_queue")), step["task_queue"]))
    return found


def _step_calls(i: int, step: dict[str, Any]) -> list[Call]:
    sid = step.get("id") if isinstance(step.get("id"), str) else None
    out: list[Call] = []

    def add(loc: tuple[Any, ...], kind: Kind, tool: Any, holder: dict[str, Any]) -> None:
        if isinstance(tool, str):
            pinned = (
                holder.get("resolved_tool") if kind in ("step", "compensate", "agent") else None
            )
            pinned = holder.get("resolved_model") if kind == "model" else pinned
            args = holder.get("with") if kind not in ("plan", "model") else None
            out.append(
                Call(
                    path=format_loc(("steps", i, *loc)),
                    kind=kind,
                    step=sid,
                    tool=tool,
                    pinned=pinned if isinstance(pinned, str) else None,
                    args=args if isinstance(args, dict) else {},
                )
            )

    add(("tool",), "step", step.get("tool"), step)
    pipeline = step.get("pipeline")
    if isinstance(pipeline, str):
        add(("pipeline",), "pipeline", pipeline, step)
    elif isinstance(pipeline, dict):
        allowed = pipeline.get("allowed_tools")
        for k, name in enumerate(allowed if isinstance(allowed, list) else []):
            add(("pipeline", "allowed_tools", k), "plan", name, pipeline)
    agent = step.get("agent")
    if isinstance(agent, dict):
        add(("agent",), "model", MODEL_TOOL, agent)
        entries = agent.get("tools")
        for k, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, str):
                add(("agent", "tools", k), "agent", entry, {})
            elif isinstance(entry, dict):
                add(("agent", "tools", k, "tool"), "agent", entry.get("tool"), entry)
                out += _notify_calls(i, sid, ("agent", "tools", k), entry)
    compensate = step.get("compensate")
    if isinstance(compensate, dict):
        add(("compensate", "tool"), "compensate", compensate.get("tool"), compensate)
    return out + _notify_calls(i, sid, (), step)


def _notify_calls(
    i: int, sid: str | None, at: tuple[Any, ...], holder: dict[str, Any]
) -> list[Call]:
    """The notification of the gate `holder` (a step, or an agent's tool entry) describes."""
    approval = holder.get("approval")
    notify = approval.get("notify") if isinstance(approval, dict) else None
    if not isinstance(notify, dict):
        return []
    tool = notify.get("tool", DEFAULT_NOTIFY_TOOL)
    if not isinstance(tool, str):
        return []
    args = notify.get("with")
    return [
        Call(
            path=format_loc(("steps", i, *at, "approval", "notify", "tool")),
            kind="notify",
            step=sid,
            tool=tool,
            args=args if isinstance(args, dict) else {},
        )
    ]
