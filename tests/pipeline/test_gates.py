"""Approval gates: stages and actions, quorum, policy refusals, digests and auto-approval."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.worker import Worker

from tests.pipeline.conftest import Start
from tests.pipeline.gating import decide, open_gate
from tests.support.util import eventually
from workflows.pipeline import PipelineWorkflow


def gated(stage: str, tool: str = "test.echo", extra: str = "", with_: str = "{msg: hi}") -> str:
    return f"""
name: gated
steps:
  - id: work
    tool: {tool}
    with: {with_}
    approval:
      stage: {stage}
      approvers: ["role:ops", "user:carol"]
{extra}
  - id: next
    needs: [work]
    tool: test.echo
    with: {{seen: "${{steps.work.output}}"}}
output: "${{steps.next.output.seen}}"
"""


async def refused(handle: Any, gate: str, action: str, **kw: Any) -> Any:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await decide(handle, gate, action, **kw)
    return info.value.cause


async def test_before_gate_approve_runs_the_step(worker: Worker, start: Start) -> None:
    """An approved before-gate lets the step run with its inputs, and the gate is recorded."""
    handle = await start(gated("before"))
    g = await open_gate(handle, "work")
    assert g.subject == {"msg": "hi"} and g.actions == [
        "approve",
        "reject",
        "modify",
        "skip",
        "cancel",
    ]
    view = await decide(handle, "work", "approve", comment="looks fine")
    assert view.state == "approved" and view.decided_by == "alice"
    result = await handle.result()
    assert result.output == {"msg": "hi", "step": "work"}
    status = await handle.query(PipelineWorkflow.status)
    entry = next(a for a in status.audit if a.kind == "decision")
    assert (entry.actor, entry.action, entry.outcome, entry.comment) == (
        "alice",
        "approve",
        "accepted",
        "looks fine",
    )


async def test_before_gate_modify_patches_inputs(worker: Worker, start: Start) -> None:
    """Modify at a before-gate merges the patch into the inputs the step runs with."""
    handle = await start(gated("before"))
    await open_gate(handle, "work")
    await decide(handle, "work", "modify", patch={"msg": "changed", "extra": 1})
    assert (await handle.result()).output == {"msg": "changed", "extra": 1, "step": "work"}


async def test_before_gate_reject_fails_run(worker: Worker, start: Start) -> None:
    """Rejecting fails the step and the run, naming who rejected."""
    handle = await start(gated("before"))
    await open_gate(handle, "work")
    await decide(handle, "work", "reject", actor="carol", roles=[])
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "rejected at before gate by carol" in str(info.value.cause)


async def test_before_gate_skip_skips_step_and_dependents(worker: Worker, start: Start) -> None:
    """Skip at a before-gate skips the step; its dependents are skipped too."""
    handle = await start(gated("before"))
    await open_gate(handle, "work")
    await decide(handle, "work", "skip")
    result = await handle.result()
    assert result.steps == {"work": "skipped", "next": "skipped"}


async def test_gate_cancel_cancels_the_run(worker: Worker, start: Start) -> None:
    """Cancel at a gate ends the run as cancelled."""
    handle = await start(gated("before"))
    await open_gate(handle, "work")
    await decide(handle, "work", "cancel")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert status.state == "cancelled"
    assert [s.state for s in status.steps] == ["cancelled", "cancelled"]
    assert status.steps[1].reason == "not reached: the run was cancelled"


async def test_after_gate_reviews_output_and_modify_replaces_it(
    worker: Worker, start: Start
) -> None:
    """An after-gate shows the output; modify patches it before dependents see it."""
    handle = await start(gated("after"))
    g = await open_gate(handle, "work")
    assert g.subject == {"msg": "hi", "step": "work"}
    await decide(handle, "work", "modify", patch={"msg": "reviewed"})
    assert (await handle.result()).output == {"msg": "reviewed", "step": "work"}


async def test_after_gate_retry_reruns_with_patched_inputs(worker: Worker, start: Start) -> None:
    """Retry at an after-gate reruns the step with patched inputs and opens a new round."""
    handle = await start(gated("after"))
    await open_gate(handle, "work")
    await decide(handle, "work", "retry", patch={"msg": "again"})
    g = await open_gate(handle, "work", round_=1)
    assert g.subject == {"msg": "again", "step": "work"}
    await decide(handle, "work", "approve")
    assert (await handle.result()).output == {"msg": "again", "step": "work"}


async def test_after_gate_reject_and_skip(worker: Worker, start: Start) -> None:
    """Reject at an after-gate fails the run; skip marks the step skipped."""
    handle = await start(gated("after"))
    await open_gate(handle, "work")
    await decide(handle, "work", "reject")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    handle = await start(gated("after"))
    await open_gate(handle, "work")
    await decide(handle, "work", "skip")
    assert (await handle.result()).steps["work"] == "skipped"


async def test_on_failure_gate_retry_with_patch_then_succeeds(worker: Worker, start: Start) -> None:
    """A step that failed after its retries waits; retry with patched inputs makes it pass."""
    handle = await start(
        gated(
            "on_failure",
            tool="test.flaky",
            with_="{fail_times: 99, value: v}",
            extra="    retry: {max_attempts: 1}",
        )
    )
    g = await open_gate(handle, "work")
    assert "flaky failure" in g.subject["error"]
    assert g.actions == ["retry", "skip", "reject", "cancel"]
    view = await refused(handle, "work", "approve")
    assert view.type == "action_not_allowed"
    await decide(handle, "work", "retry", patch={"fail_times": 0})
    result = await handle.result()
    assert result.output["value"] == "v"


async def test_on_failure_gate_skip_with_substitute_output(worker: Worker, start: Start) -> None:
    """Skip with a substitute output lets dependents run on the substitute."""
    handle = await start(gated("on_failure", tool="test.fail", with_="{message: broken}"))
    await open_gate(handle, "work")
    await decide(handle, "work", "skip", patch={"substitute": True})
    result = await handle.result()
    assert result.output == {"substitute": True}
    assert result.steps == {"work": "skipped", "next": "succeeded"}


async def test_on_failure_gate_reject_fails_with_the_original_error(
    worker: Worker, start: Start
) -> None:
    """Reject at an on_failure gate fails the run with the step's own error."""
    handle = await start(gated("on_failure", tool="test.fail", with_="{message: broken}"))
    await open_gate(handle, "work")
    await decide(handle, "work", "reject")
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert "broken" in str(info.value.cause)


async def test_quorum_two_of_three(worker: Worker, start: Start) -> None:
    """A quorum of 2 needs two distinct approvers; one vote keeps the gate open."""
    handle = await start(gated("before", extra="      quorum: 2"))
    await open_gate(handle, "work")
    first = await decide(handle, "work", "approve", actor="alice")
    assert first.state == "open" and [v.actor for v in first.approvals] == ["alice"]
    again = await refused(handle, "work", "approve", actor="alice")
    assert again.type == "already_voted"
    second = await decide(handle, "work", "approve", actor="bob")
    assert second.state == "approved"
    await handle.result()


async def test_self_approval_refused_when_forbidden(worker: Worker, start: Start) -> None:
    """The run's requester may not approve a gate that forbids self-approval."""
    from workflows.models import Principal

    handle = await start(
        gated("before", extra="      forbid_self_approval: true"),
        requester=Principal(principal="alice", roles=["ops"]),
    )
    await open_gate(handle, "work")
    err = await refused(handle, "work", "approve", actor="alice")
    assert err.type == "self_approval" and "requested this run" in err.message
    await decide(handle, "work", "approve", actor="bob")
    await handle.result()


async def test_unauthorized_update_refused_and_signal_refusal_recorded(
    worker: Worker, start: Start
) -> None:
    """Without an approver role the update is refused with a clear error; the signal's refusal is audited."""
    handle = await start(gated("before"))
    await open_gate(handle, "work")
    err = await refused(handle, "work", "approve", actor="mallory", roles=["dev"])
    assert err.type == "not_authorized"
    assert "'mallory'" in err.message and "role:ops" in err.message
    await handle.signal(
        PipelineWorkflow.decide,
        {"gate": "work", "action": "approve", "actor": "mallory", "roles": ["dev"]},
    )
    await handle.signal(PipelineWorkflow.decide, {"gate": "work", "verb": "approve"})

    async def two_refusals() -> Any:
        s = await handle.query(PipelineWorkflow.status)
        return (
            [a for a in s.audit if a.outcome == "refused"]
            if len([a for a in s.audit if a.outcome == "refused"]) == 2
            else None
        )

    refusals = await eventually(two_refusals, what="both refusals audited")
    assert refusals[0].actor == "mallory" and "may not decide" in (refusals[0].reason or "")
    assert "malformed decision" in (refusals[1].reason or "")
    status = await handle.query(PipelineWorkflow.status)
    assert status.state == "waiting" and status.open_gates[0].state == "open"
    await handle.signal(
        PipelineWorkflow.decide,
        {"gate": "work", "action": "approve", "actor": "alice", "roles": ["ops"]},
    )
    assert (await handle.result()).state == "completed"


async def test_decision_refused_before_gate_opens_and_for_unknown_gate(
    worker: Worker, start: Start
) -> None:
    """A decision for a gate that is not open yet, or does not exist, is refused."""
    handle = await start(
        """
name: late_gate
steps:
  - id: slow
    tool: test.sleep
    with: {seconds: 1}
  - id: work
    needs: [slow]
    tool: test.echo
    approval: {approvers: ["role:ops"]}
"""
    )
    early = await refused(handle, "work", "approve")
    assert early.type == "gate_not_open"
    unknown = await refused(handle, "nope", "approve")
    assert unknown.type == "unknown_gate"
    g = await open_gate(handle, "work")
    assert g.approvals == []  # the early decision was not applied later
    await decide(handle, "work", "approve")
    await handle.result()


async def test_digest_mismatch_refused(worker: Worker, start: Start) -> None:
    """A decision bound to a digest of different content is refused; the right digest is accepted."""
    handle = await start(gated("before"))
    g = await open_gate(handle, "work")
    err = await refused(handle, "work", "approve", digest="sha256:" + "0" * 64)
    assert err.type == "digest_mismatch"
    await decide(handle, "work", "approve", digest=g.digest)
    await handle.result()


async def test_malformed_patch_and_allow_list_refused(worker: Worker, start: Start) -> None:
    """A modify without an object patch, and an action outside `allow`, are refused."""
    handle = await start(gated("before", extra="      allow: [approve, reject, modify]"))
    await open_gate(handle, "work")
    assert (await refused(handle, "work", "modify", patch=[1, 2])).type == "bad_patch"
    assert (await refused(handle, "work", "skip")).type == "action_not_allowed"
    await decide(handle, "work", "approve")
    await handle.result()


async def test_separation_of_duties_between_gates(worker: Worker, start: Start) -> None:
    """A principal who approved one gate may not approve a gate that must be distinct from it."""
    handle = await start(
        """
name: sod
steps:
  - id: build
    tool: test.echo
    approval: {approvers: ["role:ops"]}
  - id: release
    needs: [build]
    tool: test.echo
    approval: {approvers: ["role:ops"], distinct_from: [build]}
"""
    )
    await open_gate(handle, "build")
    await decide(handle, "build", "approve", actor="alice")
    await open_gate(handle, "release")
    assert (
        await refused(handle, "release", "approve", actor="alice")
    ).type == "separation_of_duties"
    await decide(handle, "release", "approve", actor="bob")
    await handle.result()


async def test_auto_mode_and_auto_approve_if_skip_the_person(worker: Worker, start: Start) -> None:
    """approval_mode auto, and an auto_approve_if that holds, approve without a person and say so."""
    handle = await start(gated("before"), approval_mode="auto")
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert [(a.kind, a.action) for a in status.audit] == [("auto_approve", "approve")]
    handle = await start(
        """
name: risk
steps:
  - id: assess
    tool: test.echo
    with: {tier: 1}
  - id: act
    needs: [assess]
    tool: test.echo
    approval: {approvers: ["role:ops"], auto_approve_if: "steps.assess.output.tier <= 1"}
"""
    )
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert "auto_approve_if held" in (status.audit[0].reason or "")


async def test_timeout_applies_on_timeout_action(worker: Worker, start: Start) -> None:
    """A gate nobody decides times out and its on_timeout action applies (here: skip)."""
    handle = await start(gated("before", extra="      timeout: 1s\n      on_timeout: skip"))
    result = await handle.result()
    assert result.steps["work"] == "skipped"
    status = await handle.query(PipelineWorkflow.status)
    assert [(a.kind, a.action) for a in status.audit] == [("timeout", "skip")]


async def test_escalation_widens_approvers_then_times_out(worker: Worker, start: Start) -> None:
    """On timeout a gate escalates to other approvers, who may then decide."""
    handle = await start(
        gated(
            "before",
            extra='      timeout: 1s\n      on_timeout: escalate\n      escalate_to: ["role:lead"]\n'
            "      escalation_timeout: 1h",
        )
    )

    async def escalated() -> Any:
        g = await open_gate(handle, "work")
        return g if g.escalated else None

    g = await eventually(escalated, what="gate escalated")
    assert "role:lead" in g.approvers
    await decide(handle, "work", "approve", actor="dana", roles=["lead"])
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert [a.kind for a in status.audit] == ["escalation", "decision"]


async def test_reminders_and_notifications_are_sent(worker: Worker, start: Start) -> None:
    """Opening a gate notifies through the notify tool; reminders follow until it is decided."""
    from tests.support import fakes

    fakes.LEDGER.clear()
    handle = await start(
        gated(
            "before",
            extra="      remind_after: 500ms\n      notify: {tool: test.ledger, with: {sleep: 0}}",
        )
    )
    await open_gate(handle, "work")
    await eventually(lambda: len(fakes.LEDGER) >= 3, what="open notice and two reminders")
    await decide(handle, "work", "approve")
    await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    assert sum(a.kind == "reminder" for a in status.audit) >= 2


async def test_item_gates_notify_their_approvers(worker: Worker, start: Start) -> None:
    """Each for_each item's gate notifies through its step's notify tool when it opens (the
    notice looked its gate up by the item's id among the steps, found none, and was never
    sent)."""
    from tests.support import fakes

    fakes.LEDGER.clear()
    handle = await start(
        """
name: each_notified
steps:
  - id: write
    for_each: "${input.files}"
    tool: test.echo
    with: {path: "${item}"}
    approval:
      approvers: ["role:ops"]
      notify: {tool: test.ledger, with: {sleep: 0}}
""",
        {"files": ["a", "b"]},
    )
    await open_gate(handle, "write.0")
    await open_gate(handle, "write.1")
    await eventually(lambda: len(fakes.LEDGER) >= 2, what="a notice per item gate")
    assert sorted(fakes.LEDGER) == ["write.0", "write.1"]
    await decide(handle, "write.0", "approve")
    await decide(handle, "write.1", "approve")
    await handle.result()
