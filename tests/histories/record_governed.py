"""Governed scenarios for `python -m tests.histories.record`: a GovernedWorkflow each, with a
given plan (no LLM), its review driven through the workflow's own update, and the child
PipelineWorkflow that executes the plan recorded beside it (`<name>--execute.json`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle

from activities.registry import ToolRegistry
from api.governed import tools_for
from tests.support.util import eventually
from workflows.governed import GovernedWorkflow
from workflows.language.policy import Policy
from workflows.models import Decision, Principal, RunStatus
from workflows.rules.governed import GovernedInput

Handle = WorkflowHandle[Any, Any]
# A drive returns False when the run is to be recorded while still open (parked at its review).
GovDrive = Callable[[Handle], Awaitable[bool | None]]

REQUESTER = Principal(principal="olga", roles=["operator"])
# Two echo steps make a plan tier 2 (the rule); a test.* tool is high risk (score 5: tier 3).
POLICY: dict[str, Any] = {
    "name": "recorded",
    "allowed_tools": ["data.echo", "test.echo"],
    "rules": [
        {"if": "len(plan.steps) > 1", "tier": 2, "reason": "two steps are reviewed by a peer"}
    ],
    "tier2": {"approvers": ["role:peer"], "quorum": 1, "timeout": "1h"},
    "tier3": {"approvers": ["role:elder"], "quorum": 1},
}


def echo(sid: str, value: str, **more: Any) -> dict[str, Any]:
    return {"id": sid, "tool": "data.echo", "with": {"value": value}, **more}


def plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "recorded_plan",
        "input": {"type": "object", "properties": {"text": {"type": "string"}}},
        "steps": list(steps),
        "output": "${steps.first.output.value}",
    }


async def status(handle: Handle) -> RunStatus:
    found: RunStatus = await handle.query(GovernedWorkflow.status)
    return found


async def review_open(handle: Handle) -> RunStatus:
    return await eventually(
        lambda: status(handle),
        ok=lambda s: any(g.gate == "review" and g.state == "open" for g in s.open_gates),
        what="the review gate open",
    )


async def vote(handle: Handle, actor: str, role: str, action: str, **more: Any) -> None:
    d = Decision(gate="review", action=action, actor=actor, roles=[role], **more)
    await handle.execute_update(GovernedWorkflow.submit_decision, d)


async def _auto(handle: Handle) -> None:
    return None


async def _modified(handle: Handle) -> None:
    await review_open(handle)
    # A decision the gate refuses (not a peer), recorded in the audit.
    await handle.signal(
        GovernedWorkflow.decide,
        {"gate": "review", "action": "approve", "actor": "mallory", "roles": ["dev"]},
    )
    # The peer adds a high-risk step: the plan becomes tier 3 and waits for an elder.
    steps = [
        echo("first", "${input.text}"),
        echo("second", "b"),
        {"id": "third", "tool": "test.echo"},
    ]
    await vote(handle, "pat", "peer", "modify", patch={"plan": {"steps": steps}}, comment="+1 step")
    # The update returns once the gate took the modify: what it shows now is the new tier's gate
    # (recordings made before 2026-11 show the peer's modify closing it on its own).
    shown = await status(handle)
    if any(g.gate == "review" and g.state == "open" for g in shown.open_gates):
        assert shown.open_gates[0].approvers == ["role:elder"], shown.open_gates
        await vote(handle, "eve", "elder", "approve")


async def _parked(handle: Handle) -> bool:
    await review_open(handle)
    await handle.signal(GovernedWorkflow.pause)
    return False


async def _rejected(handle: Handle) -> None:
    await review_open(handle)
    await vote(handle, "pat", "peer", "reject", comment="not this week")


GOVERNED: dict[str, tuple[dict[str, Any], GovDrive]] = {
    "governed_tier1_auto": (plan(echo("first", "${input.text}")), _auto),
    "governed_tier2_modified_to_tier3": (
        plan(echo("first", "${input.text}"), echo("second", "b")),
        _modified,
    ),
    "governed_rejected": (plan(echo("first", "${input.text}"), echo("second", "b")), _rejected),
    "governed_parked_at_review": (
        plan(echo("first", "${input.text}"), echo("second", "b")),
        _parked,
    ),
}


async def record_governed(
    client: Client, task_queue: str, registry: ToolRegistry, only: list[str]
) -> list[tuple[str, str]]:
    """Run each scenario to its end; returns (file stem, workflow id) of every history to keep."""
    policy = Policy.model_validate(POLICY)
    kept: list[tuple[str, str]] = []
    for name, (proposed, drive) in GOVERNED.items():
        if only and name not in only:
            continue
        handle = await client.start_workflow(
            GovernedWorkflow.run,
            GovernedInput(
                request=f"recorded scenario {name}",
                context={"text": "hello"},
                plan=proposed,
                policy=policy,
                requester=REQUESTER,
                tools=tools_for(policy, registry),
            ),
            id=name,
            task_queue=task_queue,
        )
        if await drive(handle) is False:
            kept.append((name, name))  # the caller terminates it once its history is read
            continue
        try:
            await handle.result()
        except Exception:  # a rejected run fails: that is what is recorded
            pass
        kept.append((name, name))
        child = f"{name}--execute"
        if (await status(handle)).governed.child_workflow_id == child:  # type: ignore[union-attr]
            kept.append((child, child))
    return kept
