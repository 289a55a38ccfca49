"""What a plan (a definition made at run time) can reach, and the check that governs it: every
tool it can call (steps, compensations, gate notifications) is allowed, counted and scored, and a
task queue is named only where allowed. No server: the check is a plain function and an activity
method over the real tool registry."""

from __future__ import annotations

from typing import Any

import pytest

from activities import default_registry
from activities.models import PlanCall
from workflows.language.plans import PlanActivities, plan_issues
from workflows.language.reach import Call, calls, task_queues

ECHO = {"id": "echo", "tool": "data.echo", "with": {"value": "hi"}}
# The reproduced plan: a harmless echo whose compensation lists the root folder, then a failure
# that sets the compensation off.
COMPENSATED: dict[str, Any] = {
    "name": "p",
    "steps": [
        {**ECHO, "compensate": {"tool": "shell.run", "with": {"argv": ["ls", "-la", "/"]}}},
        {"id": "boom", "tool": "flow.fail", "needs": ["echo"], "with": {"message": "x"}},
    ],
}
# A gate that notifies a webhook the plan chose; `notify` names no tool, so notify.webhook.
NOTIFYING: dict[str, Any] = {
    "name": "p",
    "steps": [
        {
            **ECHO,
            "approval": {
                "approvers": ["role:ops"],
                "remind_after": "1h",
                "notify": {"with": {"url": "https://hooks.example/x"}},
            },
        }
    ],
}
DATA = ["data.echo", "data.transform", "flow.fail"]


def test_calls_lists_every_tool_a_definition_can_call_with_its_path() -> None:
    """A step's tool, its compensation and its gate's notification (the model's default tool when
    it names none) each come with their path, step and arguments; a catalog pipeline and the
    tools a nested plan may call are listed too; malformed parts are skipped, not raised on."""
    raw = {
        "steps": [
            {**NOTIFYING["steps"][0], "compensate": {"tool": "shell.run@1", "with": {"a": 1}}},
            {"id": "child", "pipeline": "approval_demo"},
            {"id": "plan", "pipeline": {"definition": "${input.p}", "allowed_tools": ["x.y"]}},
            "not a step",
            {"id": "odd", "tool": 5, "approval": {"notify": "nope"}, "compensate": []},
        ]
    }
    assert [(c.path, c.kind, c.step, c.tool) for c in calls(raw)] == [
        ("steps[0].tool", "step", "echo", "data.echo"),
        ("steps[0].compensate.tool", "compensate", "echo", "shell.run@1"),
        ("steps[0].approval.notify.tool", "notify", "echo", "notify.webhook"),
        ("steps[1].pipeline", "pipeline", "child", "approval_demo"),
        ("steps[2].pipeline.allowed_tools[0]", "plan", "plan", "x.y"),
    ]
    found = calls(raw)
    assert found[1].args == {"a": 1} and found[1].name == "shell.run"
    assert found[2].args == {"url": "https://hooks.example/x"}
    assert calls("not a definition") == [] and calls({"steps": "x"}) == []
    pinned = Call("steps[0].tool", "step", "s", "data.echo", pinned="data.echo@1.0.0")
    assert pinned.ref == "data.echo@1.0.0"


def test_task_queues_lists_the_defaults_and_each_steps_queue() -> None:
    """Every task queue a definition names, with its path; a value that is not text is left to
    the validator."""
    raw = {
        "defaults": {"task_queue": "gpu"},
        "steps": [{"id": "a", "task_queue": "other-team"}, {"id": "b", "task_queue": 5}, "x"],
    }
    assert task_queues(raw) == [
        ("defaults.task_queue", "gpu"),
        ("steps[0].task_queue", "other-team"),
    ]
    assert task_queues([]) == [] and task_queues({"defaults": None, "steps": None}) == []


@pytest.mark.parametrize(
    ("plan", "allowed", "expected"),
    [
        (
            COMPENSATED,
            DATA,
            "steps[0].compensate.tool: tool 'shell.run' is not allowed in this "
            "plan (allowed: data.echo, data.transform, flow.fail)",
        ),
        (
            NOTIFYING,
            DATA,
            "steps[0].approval.notify.tool: tool 'notify.webhook' is not "
            "allowed in this plan (allowed: data.echo, data.transform, flow.fail)",
        ),
        (
            {"steps": [{"id": "a", "tool": "shell.run"}]},
            [],
            "steps[0].tool: tool 'shell.run' is not allowed in this plan (allowed: none)",
        ),
    ],
)
def test_every_call_must_be_an_allowed_tool(
    plan: dict[str, Any], allowed: list[str], expected: str
) -> None:
    """A compensation or a gate notification outside the allowed tools is refused like a step's
    own tool, naming its path and what it is."""
    assert plan_issues(plan, allowed, 20) == [expected]


def test_max_steps_counts_every_call_a_plan_names() -> None:
    """Compensations and notifications count against max_steps with the steps: two steps with
    one compensation are three calls, refused at two and accepted at three."""
    assert plan_issues(COMPENSATED, [*DATA, "shell.run"], 3) == []
    assert plan_issues(COMPENSATED, [*DATA, "shell.run"], 2) == [
        "steps: 2 steps, 3 tool calls with their compensations and gate notifications, more "
        "than the 2 this plan may have"
    ]


def test_a_task_queue_is_refused_unless_allowed() -> None:
    """A plan may name no task queue by default (a step's or its defaults'); one listed in
    allowed_task_queues is accepted, another still refused with its path and the list."""
    plan = {
        "defaults": {"task_queue": "ours"},
        "steps": [{**ECHO, "task_queue": "other-team"}],
    }
    assert plan_issues(plan, DATA, 20) == [
        "defaults.task_queue: task queue 'ours' is not allowed in this plan (allowed: none)",
        "steps[0].task_queue: task queue 'other-team' is not allowed in this plan (allowed: none)",
    ]
    assert plan_issues(plan, DATA, 20, ["ours"]) == [
        "steps[0].task_queue: task queue 'other-team' is not allowed in this plan (allowed: ours)"
    ]
    assert plan_issues(plan, DATA, 20, ["ours", "other-team"]) == []


def test_other_pipelines_are_refused_once_per_step() -> None:
    """A catalog pipeline or a nested plan in a plan is refused as another pipeline, not also as
    a tool it is not allowed."""
    plan = {
        "steps": [
            {"id": "c", "pipeline": "approval_demo"},
            {"id": "p", "pipeline": {"definition": "${input.x}", "allowed_tools": ["shell.run"]}},
        ]
    }
    assert plan_issues(plan, DATA, 20) == [
        "steps[0].pipeline: a plan cannot run other pipelines",
        "steps[1].pipeline: a plan cannot run other pipelines",
    ]


def test_the_check_gives_each_call_its_own_risk_by_path() -> None:
    """The plan check pins the tools and returns the risk of every call it can make: the low
    echo and fail, the high compensation, the medium notification."""
    check = PlanActivities(default_registry(entry_points=False)).check
    found = check(PlanCall(definition=COMPENSATED, allowed_tools=[*DATA, "shell.run"]))
    assert found.errors == [] and found.risks == {
        "steps[0].tool": "low",
        "steps[0].compensate.tool": "high",
        "steps[1].tool": "low",
    }
    found = check(PlanCall(definition=NOTIFYING, allowed_tools=[*DATA, "notify.webhook"]))
    assert found.risks == {"steps[0].tool": "low", "steps[0].approval.notify.tool": "medium"}
    refused = check(PlanCall(definition=NOTIFYING, allowed_tools=DATA))
    assert refused.definition is None and refused.risks == {}
    assert refused.errors[0].startswith("steps[0].approval.notify.tool: tool 'notify.webhook'")
