"""Decisions at agent call gates, without a server: the patch holds the call's arguments and
nothing else, fixed arguments stay fixed, grants go with approve at a call gate only, what a
grant covers and for how long, and who may revoke one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.rules.agent_sim import READ, RESTART, AgentSim, agent_def
from workflows.agent_models import GrantSpec, RevokeGrant
from workflows.models import Decision
from workflows.rules import agent_policy, decisions
from workflows.rules.agent_view import grants

FIXED = (
    "{tool: ops.restart, resolved_tool: ops.restart@1.0.0, risk: high, parameters: "
    '{type: object}, with: {mode: graceful}, approval: {approvers: ["role:ops"]}}'
)


def gated(*calls: tuple[str, Any], text: str | None = None, **kw: Any) -> AgentSim:
    sim = AgentSim(text or agent_def(), {"service": "api"}, **kw)
    sim.advance()
    sim.reply(*calls)
    sim.check({c.n: "high" for c in sim.checks()[-1].check.calls})
    return sim


def refused(sim: AgentSim, gate: str, action: str, **kw: Any) -> str:
    found = sim.vote(gate, action, **kw)
    assert found is not None, "admitted"
    return f"{found.code}: {found.message}"


def test_a_patch_at_a_call_gate_holds_the_arguments_and_nothing_else() -> None:
    """`{"arguments": {...}}` is the only patch: one that names the tool, the version, or is not
    an object of arguments is refused (bad_patch), so an edit cannot move a call elsewhere."""
    sim = gated(("ops_restart", {"service": "api"}))
    for patch in (
        {"tool": "shell.run"},
        {"arguments": {"service": "db"}, "tool": "shell.run"},
        {"version": "9.9.9"},
        {"arguments": "rm -rf"},
    ):
        said = refused(sim, "triage.call-1", "modify", patch=patch)
        assert said == (
            "bad_patch: at agent call gate 'triage.call-1' the patch is "
            '{"arguments": {...}}: it changes the call\'s arguments, never its tool'
        )
    assert sim.vote("triage.call-1", "modify", patch={"arguments": {"service": "db"}}) is None
    assert sim.tools_run()[0].tool == "ops.restart@1.0.0"


def test_a_patch_cannot_change_what_the_step_fixes() -> None:
    """An approver can no more change a fixed argument than the model can."""
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, FIXED))
    assert sim.call(1).arguments == {"service": "api", "mode": "graceful"}
    said = refused(sim, "triage.call-1", "modify", patch={"arguments": {"mode": "hard"}})
    assert said == (
        "bad_patch: the step fixes arguments.mode of calls to ops.restart@1.0.0: "
        "a patch cannot change them"
    )


def test_retry_and_skip_are_not_offered_at_call_gates() -> None:
    """A call gate offers approve, reject, modify and cancel."""
    sim = gated(("ops_restart", {"service": "api"}))
    said = refused(sim, "triage.call-1", "skip")
    assert said.startswith("action_not_allowed") and "approve, reject, modify, cancel" in said


def test_the_patch_check_validates_merged_arguments_against_the_tool() -> None:
    """A modify is checked when it is sent: the merged arguments against the tool's input."""
    sim = gated(("ops_restart", {"service": "api"}))
    d = Decision(
        gate="triage.call-1",
        action="modify",
        actor="alice",
        roles=["ops"],
        patch={"arguments": {"mode": "hard"}},
    )
    found = decisions.find_gate(sim.state, sim.d, d.gate)
    check = decisions.check_call(sim.d, found, d)
    assert check is not None and check.tool == "ops.restart@1.0.0"
    assert check.value == {"service": "api", "mode": "hard"} and check.where == "arguments"


def test_grants_go_with_approve_at_call_gates_only() -> None:
    """A grant with any other action, or at a step's own gate, is refused (bad_grant)."""
    sim = gated(("ops_restart", {"service": "api"}))
    said = refused(sim, "triage.call-1", "reject", grant=GrantSpec())
    assert said == (
        "bad_grant: a grant goes with approve at an agent call gate, not reject at agent call "
        "gate 'triage.call-1'"
    )
    step = AgentSim(
        "name: s\nsteps:\n  - id: a\n    tool: t.x\n    approval: {approvers: ['role:ops']}\n"
    )
    step.advance()
    said = refused(step, "a", "approve", grant=GrantSpec())
    assert (
        said
        == "bad_grant: a grant goes with approve at an agent call gate, not approve at gate 'a'"
    )


def test_a_grant_covers_later_calls_of_the_tool_until_it_runs_out() -> None:
    """Calls of the granted tool under the same gate rules run without a gate, each counted,
    until the grant's calls are used; then the next one waits again."""
    sim = gated(("ops_restart", {"service": "api"}))
    sim.vote("triage.call-1", "approve", grant=GrantSpec(calls=2, expires_in="2h"))
    (grant,) = sim.state.grants
    assert (grant.id, grant.tool, grant.granted_by, grant.calls) == (
        "g1",
        "ops.restart@1.0.0",
        ["alice"],
        2,
    )
    sim.done(1)
    sim.reply(*[("ops_restart", {"service": s}) for s in ("a", "b", "c")])
    sim.check({2: "high", 3: "high", 4: "high"})
    assert [c.decision for c in sim.rec.calls[1:]] == ["granted", "granted", "approve"]
    assert sim.call(2).gate is None and sim.call(4).gate is not None
    assert grant.used == 2 and grant.state(sim.now) == "used"


def test_a_grant_never_covers_another_tool_other_rules_or_other_arguments() -> None:
    """Another tool waits at its gate; `same_arguments` covers only the very same arguments."""
    other = RESTART.replace("ops.restart", "ops.stop").replace('["role:ops"]', '["role:ops"]')
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, RESTART, other))
    sim.vote("triage.call-1", "approve", grant=GrantSpec(same_arguments=True))
    sim.done(1)
    sim.reply(
        ("ops_restart", {"service": "api"}),
        ("ops_restart", {"service": "db"}),
        ("ops_stop", {"service": "api"}),
    )
    sim.check({2: "high", 3: "high", 4: "high"})
    assert [c.decision for c in sim.rec.calls[1:]] == ["granted", "approve", "approve"]


def test_a_grant_ends_at_its_expiry() -> None:
    """Past `expires_in` a grant covers nothing; the status says it expired."""
    sim = gated(("ops_restart", {"service": "api"}))
    sim.vote("triage.call-1", "approve", grant=GrantSpec(expires_in="1h"))
    sim.done(1)
    sim.tick(hours=2)
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({2: "high"})
    assert sim.call(2).decision == "approve"
    assert [g.state for g in grants(sim.state, sim.now)] == ["expired"]


def test_a_quorum_grants_only_what_every_decider_granted_at_the_narrowest() -> None:
    """With quorum 2, a grant is made only when both approvals carry one, as narrow as the
    narrowest; one approval without a grant makes none (and says so in the audit)."""
    two = RESTART.replace('approvers: ["role:ops"]', 'approvers: ["role:ops"], quorum: 2')
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, two))
    sim.vote("triage.call-1", "approve", actor="ann", grant=GrantSpec(calls=5, expires_in="2h"))
    sim.vote("triage.call-1", "approve", actor="bob", grant=GrantSpec(calls=3, expires_in="3h"))
    (grant,) = sim.state.grants
    assert grant.calls == 3 and grant.expires_at == sim.now + timedelta(hours=2)
    assert grant.granted_by == ["ann", "bob"]
    sim = gated(("ops_restart", {"service": "api"}), text=agent_def(READ, two))
    sim.vote("triage.call-1", "approve", actor="ann", grant=GrantSpec())
    sim.vote("triage.call-1", "approve", actor="bob")
    assert sim.state.grants == []
    assert (
        sim.state.audit[-1].reason
        == "no grant made: not every approval that decided the gate asked for a grant"
    )


def test_grants_are_revoked_by_their_granter_or_an_admin_only() -> None:
    """Another principal may not revoke a grant; its granter may; an admin may; a revoked grant
    covers nothing and cannot be revoked again."""
    sim = gated(("ops_restart", {"service": "api"}))
    sim.vote("triage.call-1", "approve", grant=GrantSpec())
    mallory = agent_policy.revoke(sim.state, RevokeGrant(grant="g1", actor="mallory"), sim.now)
    assert getattr(mallory, "code", None) == "not_authorized"
    unknown = agent_policy.revoke(sim.state, RevokeGrant(grant="g9", actor="alice"), sim.now)
    assert getattr(unknown, "code", None) == "unknown_grant"
    admin = RevokeGrant(grant="g1", actor="root", admin=True, reason="incident over")
    ended = agent_policy.revoke(sim.state, admin, sim.now)
    assert getattr(ended, "revoked_by", None) == "root"
    again = agent_policy.revoke(sim.state, RevokeGrant(grant="g1", actor="alice"), sim.now)
    assert getattr(again, "code", None) == "grant_not_active"
    assert sim.state.audit[-1].kind == "grant" and sim.state.audit[-1].reason == "incident over"
    sim.done(1)
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({2: "high"})
    assert sim.call(2).decision == "approve"


def test_call_gates_are_open_gates_of_the_run() -> None:
    """An open call gate makes the run wait for its approvers and is listed where every gate is
    (the status's open gates, the gates page, the inbox lines)."""
    from workflows.rules import pages, view
    from workflows.rules.pages import PageInput

    sim = gated(("ops_restart", {"service": "api"}), ("ops_read", {"service": "a"}))
    assert view.run_state(sim.state).value == "waiting"
    assert view.awaiting(sim.state) == ["role:ops"]
    assert [s.gate for s in view.open_summaries(sim.state, sim.d)] == ["triage.call-1"]
    page = pages.page(sim.state, sim.d, PageInput(of="gates"))
    assert [g.gate for g in page.gates] == ["triage.call-1"]
    calls = pages.page(sim.state, sim.d, PageInput(of="calls", step="triage", after="1"))
    assert [c.n for c in calls.calls] == [2] and calls.total == 2
    none = pages.page(sim.state, sim.d, PageInput(of="calls", step="triage", after="x"))
    assert none.problem == "bad_cursor"


def test_call_gates_keep_quorum_self_approval_and_separation_of_duties() -> None:
    """A call gate follows its approval's rules like any gate: the run's requester may not
    approve it with forbid_self_approval, whoever approved a gate it must be distinct from may
    not either, and quorum 2 needs two approvals."""
    strict = RESTART.replace(
        'approvers: ["role:ops"]',
        'approvers: ["role:ops"], quorum: 2, forbid_self_approval: true, distinct_from: [plan]',
    )
    text = agent_def(READ, strict).replace(
        "steps:\n",
        "steps:\n  - id: plan\n    tool: t.x\n    approval: {approvers: ['role:ops']}\n",
    )
    text = text.replace("  - id: triage\n", "  - id: triage\n    needs: [plan]\n")
    sim = AgentSim(text, {"service": "api"})
    sim.advance()
    sim.vote("plan", "approve", actor="pat")
    sim.succeed("plan")
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({1: "high"})
    assert refused(sim, "triage.call-1", "approve", actor="req").startswith("self_approval")
    assert refused(sim, "triage.call-1", "approve", actor="pat").startswith("separation_of_duties")
    assert sim.vote("triage.call-1", "approve", actor="ann") is None
    assert sim.tools_run() == [], "one approval of two"
    assert sim.vote("triage.call-1", "approve", actor="bob") is None
    assert [e.n for e in sim.tools_run()] == [1]
