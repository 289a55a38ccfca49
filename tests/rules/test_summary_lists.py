"""Which steps the bounded status lists when a run has more than it can show, the count of steps
in each state, and the run's grants as of the status's clock."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.agent_sim import AgentSim, agent_def
from tests.rules.sim import Sim
from tests.rules.sim import facts as sim_facts
from workflows.agent_models import GrantSpec
from workflows.models import AuditEntry, GateSummary, Principal
from workflows.rules import bounds, lifecycle, summary

FACTS = sim_facts("wf-1", "run-1", Principal(principal="req"), "manual")
MANY = bounds.STATUS_STEPS + 10


def _many() -> Sim:
    """MANY independent steps, every one started."""
    steps = "".join(f"  - {{id: s{k:02}, tool: t.x}}\n" for k in range(MANY))
    sim = Sim(f"name: many\nsteps:\n{steps}")
    sim.advance()
    return sim


def test_status_lists_the_steps_under_way_before_those_done() -> None:
    """With more steps than the status lists, the ones still running are listed (in definition
    order) and the ones already done are left to the steps page, though they moved later."""
    sim = _many()
    sim.now += timedelta(minutes=1)
    for k in range(bounds.STATUS_STEPS, MANY):
        sim.succeed(f"s{k:02}")
    steps = summary.status(sim.state, sim.d, FACTS).steps
    assert [s.id for s in steps] == [f"s{k:02}" for k in range(bounds.STATUS_STEPS)]


def test_status_lists_the_steps_that_moved_last_once_all_are_done() -> None:
    """Once every step is done, the status lists the ones that ended last, in definition order."""
    sim = _many()
    for k in range(MANY):
        sim.now += timedelta(seconds=1)
        sim.succeed(f"s{(k + 10) % MANY:02}")
    steps = summary.status(sim.state, sim.d, FACTS).steps
    assert [s.id for s in steps] == [f"s{k:02}" for k in range(MANY) if k not in range(10, 20)]


def test_status_counts_the_steps_in_each_state() -> None:
    """step_counts names each state a step is in with how many steps are in it."""
    sim = Sim("name: c\nsteps: [{id: a, tool: t.x}, {id: b, tool: t.x}, {id: c, tool: t.x}]")
    sim.advance()
    sim.succeed("a")
    sim.fail("b")
    assert summary.status(sim.state, sim.d, FACTS).step_counts == {
        "succeeded": 1,
        "failed": 1,
        "running": 1,
    }


def test_status_shows_the_runs_grants_as_of_its_clock() -> None:
    """A grant given at a call gate is in the status, active before its expiry and expired
    after it."""
    sim = AgentSim(agent_def(), {"service": "api"})
    sim.advance()
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({1: "high"})
    sim.vote("triage.call-1", "approve", grant=GrantSpec(expires_in="1h"))
    active = summary.status(sim.state, sim.d, FACTS, sim.now).grants
    assert [(g.id, g.tool, g.state) for g in active] == [("g1", "ops.restart@1.0.0", "active")]
    later = sim.now + timedelta(hours=2)
    assert [g.state for g in summary.status(sim.state, sim.d, FACTS, later).grants] == ["expired"]


def test_status_lists_steps_done_before_steps_not_started() -> None:
    """A step not started yet is not under way: the steps that ended are listed before it, and
    of those not started, the first ones."""
    waiting = "".join(f"  - {{id: p{k:02}, tool: t.x, needs: [run]}}\n" for k in range(MANY))
    done = "".join(f"  - {{id: d{k}, tool: t.x}}\n" for k in range(5))
    sim = Sim(f"name: mixed\nsteps:\n  - {{id: run, tool: t.x}}\n{waiting}{done}")
    sim.advance()
    for k in range(5):
        sim.succeed(f"d{k}")
    steps = summary.status(sim.state, sim.d, FACTS).steps
    pending = bounds.STATUS_STEPS - 6
    assert [s.id for s in steps] == [
        "run",
        *(f"p{k:02}" for k in range(pending)),
        *(f"d{k}" for k in range(5)),
    ]


def test_status_counts_own_and_child_gates_open() -> None:
    """open_gates_total counts the run's own open gates and its children's."""
    sim = Sim(
        "name: g\nsteps:\n  - {id: a, tool: t.x, approval: {approvers: ['role:ops']}}\n"
        "  - {id: b, pipeline: child}\n"
    )
    sim.advance()
    line = GateSummary(
        gate="x",
        stage="before",
        round=0,
        approvers=["role:ops"],
        actions=["approve"],
        voted=[],
        digest="sha256:1",
        opened_at=sim.now,
    )
    lifecycle.child_gates(sim.state, "b", "wf-1--b", [line, line.model_copy(update={"gate": "y"})])
    status = summary.status(sim.state, sim.d, FACTS)
    assert ([g.gate for g in status.open_gates], status.open_gates_total) == (["a", "x", "y"], 3)


def test_status_lists_the_latest_audit_entries_whole_rather_than_more_of_them_cut() -> None:
    """When the latest decisions' patches fill the audit budget, the status lists as many of the
    newest as fit with their patches, and none cut down to fit."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    for k in range(bounds.STATUS_AUDIT):
        sim.state.record(
            AuditEntry(at=sim.now, kind="decision", actor=f"u{k}", patch={"n": "p" * 6_000})
        )
    audit = summary.status(sim.state, sim.d, FACTS).audit
    assert [e.seq for e in audit] == list(range(bounds.STATUS_AUDIT - 2, bounds.STATUS_AUDIT + 1))
    assert all(e.patch == {"n": "p" * 6_000} for e in audit)


def test_status_shows_the_requester_within_its_bounds() -> None:
    """The requester's name is cut to NAME_CHARS and only its first ROLES roles are shown."""
    sim = Sim("name: one\nsteps: [{id: a, tool: t.x}]")
    roles = [f"r{k}" for k in range(bounds.ROLES + 3)]
    who = Principal(principal="n" * (bounds.NAME_CHARS + 5), roles=roles)
    facts = sim_facts("wf-1", "run-1", who, "manual")
    shown = summary.status(sim.state, sim.d, facts).requester
    assert shown == Principal(
        principal="n" * (bounds.NAME_CHARS - 1) + "…", roles=roles[: bounds.ROLES]
    )
    assert summary.status(sim.state, sim.d, sim_facts("w", "r", None, "auto")).requester is None
