"""Delegation at a gate: a delegate votes for an absent principal the gate names, one person one
vote, and the rules on who may go on hold for the delegate and the principal alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.rules.sim import T0, Sim
from workflows.language.definition import ApprovalSpec
from workflows.models import Decision, Delegation, GateRefusal, Principal, Vote
from workflows.rules import decisions, view, votes
from workflows.rules.inbox import gate_summary
from workflows.rules.state import GateRecord

DAY = timedelta(days=1)
APPROVERS = ["user:alice", "user:carol", "role:ops"]


def spec(**kw: Any) -> ApprovalSpec:
    return ApprovalSpec.model_validate({"approvers": APPROVERS, **kw})


def gate(**kw: Any) -> GateRecord:
    subject = {"amount": 10}
    return GateRecord(
        gate="pay",
        step="pay",
        stage="before",
        round=0,
        subject=subject,
        digest=votes.digest_of(subject),
        opened_at=T0,
        approvers=list(APPROVERS),
        **kw,
    )


def for_(*principals: str, until: datetime = T0 + DAY) -> list[Delegation]:
    return [Delegation(principal=p, until=until) for p in principals]


def decision(
    action: str = "approve",
    actor: str = "bob",
    roles: list[str] | None = None,
    delegations: list[Delegation] | None = None,
    **kw: Any,
) -> Decision:
    return Decision(
        gate="pay",
        action=action,  # type: ignore[arg-type]
        actor=actor,
        roles=roles or [],
        delegations=delegations or [],
        **kw,
    )


def refused(
    g: GateRecord,
    d: Decision,
    s: ApprovalSpec | None = None,
    requester: str | None = None,
    barred: set[str] | None = None,
    now: datetime = T0,
) -> GateRefusal | None:
    who = Principal(principal=requester) if requester else None
    return votes.check(g, s or spec(), d, who, barred or set(), now)


def cast(g: GateRecord, s: ApprovalSpec, *ds: Decision) -> None:
    for d in ds:
        assert refused(g, d, s) is None, d
        votes.cast(g, s, d, T0)


# ---- who a delegate votes for ----------------------------------------------------------------


def test_a_delegate_votes_for_the_absent_principal_the_gate_names() -> None:
    """Bob, named by no approver, holding alice's delegation, votes for alice: his vote says
    so and carries the channel he decided on."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision(delegations=for_("alice"), channel="slack"))
    [vote] = g.votes
    assert (vote.actor, vote.on_behalf_of, vote.channel) == ("bob", "alice", "slack")
    assert votes.live(g) == [vote]


def test_a_delegation_reaches_only_a_user_the_gate_names() -> None:
    """A delegation from someone the gate does not name, or from a name the gate holds only as
    a role, lets nobody in: the refusal names the approvers."""
    g = gate()
    for d in (decision(delegations=for_("dave")), decision(delegations=for_("ops"))):
        refusal = refused(g, d)
        assert refusal is not None and refusal.code == "not_authorized"
        assert refusal.message == (
            "'bob' with roles [] may not decide gate 'pay' "
            "(approvers: user:alice, user:carol, role:ops)"
        )


def test_an_expired_delegation_is_refused_saying_so() -> None:
    """A delegation holds up to and including its `until`; a moment later it is refused, and
    the refusal says whose delegation ended and when."""
    g, until = gate(), T0 + DAY
    d = decision(delegations=for_("alice", until=until))
    assert refused(g, d, now=until) is None
    refusal = refused(g, d, now=until + timedelta(microseconds=1))
    assert refusal == GateRefusal(
        code="not_authorized",
        message="'bob' may not decide gate 'pay': the delegation from 'alice' expired at "
        f"{until.isoformat()}",
    )


def test_an_active_delegation_wins_over_an_expired_one() -> None:
    """Of an ended delegation from alice and a current one from carol, the current one counts."""
    g = gate()
    d = decision(delegations=[*for_("alice", until=T0 - DAY), *for_("carol")])
    assert votes.represented(g, d, T0) == "carol"


def test_direct_eligibility_wins_over_a_delegation() -> None:
    """A decider the gate names votes as themself, whatever delegations they hold."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision(roles=["ops"], delegations=for_("alice")))
    assert g.votes[0].on_behalf_of is None
    assert votes.represented(g, decision(actor="carol", delegations=for_("alice")), T0) is None


def test_a_delegate_votes_for_one_who_has_not_voted_yet() -> None:
    """Holding delegations from alice and carol, bob votes for the first who has not voted on
    this subject; when both have, he is refused as already voted."""
    g, s = gate(), spec(quorum=3)
    cast(g, s, decision(actor="alice"))
    d = decision(delegations=for_("alice", "carol"))
    assert votes.represented(g, d, T0) == "carol"
    cast(g, s, decision(actor="carol"))
    assert votes.represented(g, d, T0) == "alice"
    refusal = refused(g, d, s)
    assert refusal is not None and refusal.code == "already_voted"
    assert refusal.message == "'bob for alice' has already voted on this subject of gate 'pay'"


# ---- one person, one vote --------------------------------------------------------------------


def test_a_principal_voted_for_by_a_delegate_may_not_vote_again() -> None:
    """After bob voted for alice, alice herself is refused, and so is bob again (for carol)."""
    g, s = gate(), spec(quorum=3)
    cast(g, s, decision(delegations=for_("alice")))
    assert refused(g, decision(actor="alice"), s).code == "already_voted"  # type: ignore[union-attr]
    again = decision(delegations=for_("carol"))
    assert refused(g, again, s).code == "already_voted"  # type: ignore[union-attr]


def test_a_delegate_may_not_vote_for_a_principal_who_voted() -> None:
    """After alice voted, her delegate's vote for her is refused."""
    g, s = gate(), spec(quorum=3)
    cast(g, s, decision(actor="alice"))
    refusal = refused(g, decision(delegations=for_("alice")), s)
    assert refusal is not None and refusal.code == "already_voted"


def test_quorum_and_rejections_count_distinct_persons() -> None:
    """Two votes that count for the same person (a delegate's and the principal's, recorded
    before this rule) are one person: no quorum of two, no two rejections."""
    for action, key in (("approve", "quorum"), ("reject", "rejections_to_reject")):
        g, s = gate(), spec(**{key: 2})
        g.votes = [
            Vote(actor="bob", action=action, at=T0, digest=g.digest, on_behalf_of="alice"),
            Vote(actor="alice", action=action, at=T0, digest=g.digest),
        ]
        assert votes.tally(g, s) is None
        g.votes.append(Vote(actor="carol", action=action, at=T0, digest=g.digest))
        decided = votes.tally(g, s)
        assert decided is not None and decided[0] == action


def test_a_delegate_and_another_approver_make_a_quorum() -> None:
    """Bob for alice and carol are two persons: a quorum of two decides the gate, by them."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision(delegations=for_("alice")), decision(actor="carol"))
    assert (g.outcome, g.decided_by) == ("approve", ["bob", "carol"])


def test_a_delegated_vote_lapses_when_the_gate_no_longer_names_the_principal() -> None:
    """A delegate's vote counts while the gate names `user:<principal>`, not the delegate's
    own roles."""
    g = gate()
    g.votes = [
        Vote(actor="bob", action="approve", at=T0, digest=g.digest, roles=["ops"], on_behalf_of="x")
    ]
    assert votes.live(g) == []
    g.approvers.append("user:x")
    assert len(votes.live(g)) == 1


def test_go_on_voters_name_the_delegate_and_the_principal() -> None:
    """Who voted to go on at a gate: both the delegate and whom they voted for; never a stop."""
    g = gate()
    g.votes = [
        Vote(actor="bob", action="approve", at=T0, on_behalf_of="alice"),
        Vote(actor="dan", action="reject", at=T0, on_behalf_of="carol"),
    ]
    assert votes.go_on_voters(g) == {"bob", "alice"}


# ---- self-approval and separation of duties, for both ---------------------------------------


def test_self_approval_holds_for_the_delegate_and_the_principal() -> None:
    """A run requested by alice cannot be approved by bob for her, nor one requested by bob;
    a rejection is still theirs to give."""
    g, s = gate(), spec(forbid_self_approval=True)
    d = decision(delegations=for_("alice"))
    assert refused(g, d, s, requester="alice") == GateRefusal(
        code="self_approval",
        message="'alice' requested this run and may not approve (nor may 'bob' for them) "
        "at gate 'pay'",
    )
    assert refused(g, d, s, requester="bob") == GateRefusal(
        code="self_approval", message="'bob' requested this run and may not approve at gate 'pay'"
    )
    assert refused(g, decision("reject", delegations=for_("alice")), s, requester="alice") is None
    assert refused(g, d, spec(), requester="alice") is None


def test_separation_of_duties_holds_for_the_delegate_and_the_principal() -> None:
    """When alice (or bob) voted at a gate this one must be distinct from, bob may not approve
    for alice."""
    g, s = gate(), spec(distinct_from=["review"])
    d = decision(delegations=for_("alice"))
    assert refused(g, d, s, barred={"alice"}) == GateRefusal(
        code="separation_of_duties",
        message="'alice' voted at one of ['review'] and may not also approve (nor may 'bob' for "
        "them) at gate 'pay'",
    )
    assert refused(g, d, s, barred={"bob"}) == GateRefusal(
        code="separation_of_duties",
        message="'bob' voted at one of ['review'] and may not also approve at gate 'pay'",
    )
    assert refused(g, d, s, barred={"carol"}) is None


def test_a_modify_by_a_delegate_counts_for_the_new_subject() -> None:
    """A delegate's modify replaces the subject and their vote for the principal counts on it;
    a principal the amendment bars gets no vote from their delegate."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision("modify", delegations=for_("alice"), patch={"amount": 5}))
    assert g.subject == {"amount": 5} and [v.on_behalf_of for v in votes.live(g)] == ["alice"]
    barred = gate()
    d = decision("modify", delegations=for_("alice"), patch={"amount": 5})
    votes.cast(barred, s, d, T0, votes.Amendment({"amount": 5}, APPROVERS, frozenset({"alice"})))
    assert barred.subject == {"amount": 5} and barred.votes == []
    gone = gate()
    votes.cast(gone, s, d, T0, votes.Amendment({"amount": 5}, ["user:carol"]))
    assert gone.votes == [], "the new subject's approvers name neither bob nor alice"


# ---- the trace: audit, status, inbox, Web UI details -----------------------------------------

PIPELINE = """
name: pay
steps:
  - id: a
    tool: t.x
    approval: {approvers: ["user:alice", "user:carol"], quorum: 2}
"""


def test_the_audit_names_whom_a_delegate_decided_for_and_where() -> None:
    """An accepted delegated decision is recorded with `on_behalf_of` and its channel; a
    refused one keeps its channel too."""
    sim = Sim(PIPELINE)
    sim.advance()
    d = decision(delegations=for_("alice"), channel="link").model_copy(update={"gate": "a"})
    assert isinstance(decisions.apply(sim.state, sim.d, d, None, T0, "update"), tuple)
    entry = sim.state.audit[-1]
    assert (entry.actor, entry.on_behalf_of, entry.channel) == ("bob", "alice", "link")
    decisions.apply(sim.state, sim.d, d, None, T0, "signal")
    again = sim.state.audit[-1]
    assert (again.outcome, again.on_behalf_of, again.channel) == ("refused", None, "link")


def test_status_inbox_and_details_show_bob_for_alice() -> None:
    """The gate's view, its inbox line and the Web UI details show a delegated vote as
    `bob for alice`; the inbox counts both as having voted."""
    sim = Sim(PIPELINE)
    sim.advance()
    d = decision(delegations=for_("alice")).model_copy(update={"gate": "a"})
    decisions.apply(sim.state, sim.d, d, None, T0, "update")
    g, s = sim.gate("a"), sim.d.step("a").approval
    assert s is not None
    line = gate_summary(g, s)
    assert line.voted == ["bob", "alice"]
    assert [(v.principal, v.action) for v in line.votes] == [("bob for alice", "approve")]
    assert "waiting for user:alice, user:carol (voted: bob for alice approve)" in view.details(
        sim.state, sim.d
    )
    assert view.gate_view(g, s, with_subject=False).approvals[0].on_behalf_of == "alice"
    decisions.apply(
        sim.state,
        sim.d,
        decision(actor="carol").model_copy(update={"gate": "a"}),
        None,
        T0,
        "update",
    )
    decided = view.gate_view(sim.gate("a"), s, with_subject=False)
    assert decided.decided_by == "carol"
    sim.gate("a").decided_by = ["carol", "bob"]
    assert view.gate_view(sim.gate("a"), s, with_subject=False).decided_by == "bob for alice"


def test_details_name_at_most_five_votes() -> None:
    """An open gate's line in the Web UI details names its first five votes and counts the rest."""
    sim = Sim(PIPELINE.replace('["user:alice", "user:carol"]', '["role:ops"]'))
    sim.advance()
    g = sim.gate("a")
    g.votes = [
        Vote(actor=f"p{i}", action="reject", at=T0, digest=g.digest, roles=["ops"])
        for i in range(7)
    ]
    text = view.details(sim.state, sim.d)
    assert "(voted: p0 reject, p1 reject, p2 reject, p3 reject, p4 reject and 2 more)" in text
    g.votes = g.votes[:5]
    assert "p4 reject)" in view.details(sim.state, sim.d)


def test_the_audit_names_for_whom_the_vote_was_cast_after_a_modify() -> None:
    """Alice voted; bob, delegate of alice and carol, modifies: the old votes lapse, so his vote
    on the new subject is alice's, and the audit entry says the same as the vote."""
    sim = Sim(PIPELINE)
    sim.advance()
    assert sim.vote("a", "approve", actor="alice", roles=[]) is None
    d = decision("modify", delegations=for_("alice", "carol"), patch={"n": 1})
    assert isinstance(
        decisions.apply(sim.state, sim.d, d.model_copy(update={"gate": "a"}), None, T0, "update"),
        tuple,
    )
    [vote] = votes.live(sim.gate("a"))
    assert vote.on_behalf_of == "alice" == sim.state.audit[-1].on_behalf_of
