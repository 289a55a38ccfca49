"""The rules of a decision at a gate: who may vote, how votes add up, what a modify does."""

from __future__ import annotations

from typing import Any

import pytest

from activities.documents import canonical_json
from tests.rules.sim import T0
from workflows.language.definition import ApprovalSpec
from workflows.models import Decision, Principal
from workflows.rules import votes
from workflows.rules.state import GateRecord


def spec(**kw: Any) -> ApprovalSpec:
    return ApprovalSpec.model_validate({"approvers": ["role:ops", "user:carol"], **kw})


def gate(stage: str = "before", subject: Any = None, **kw: Any) -> GateRecord:
    subject = {"amount": 10} if subject is None else subject
    return GateRecord(
        gate="pay",
        step="pay",
        stage=stage,  # type: ignore[arg-type]
        round=0,
        subject=subject,
        digest=votes.digest_of(subject),
        opened_at=T0,
        approvers=["role:ops", "user:carol"],
        **kw,
    )


def decision(
    action: str, actor: str = "alice", roles: list[str] | None = None, **kw: Any
) -> Decision:
    return Decision(
        gate="pay", action=action, actor=actor, roles=["ops"] if roles is None else roles, **kw
    )  # type: ignore[arg-type]


def cast(g: GateRecord, s: ApprovalSpec, *ds: Decision) -> None:
    for d in ds:
        assert votes.check(g, s, d, None, set(), T0) is None, d
        votes.cast(g, s, d, T0)


def code(
    g: GateRecord,
    s: ApprovalSpec,
    d: Decision,
    requester: str | None = None,
    barred: set[str] | None = None,
) -> str | None:
    who = Principal(principal=requester) if requester else None
    refusal = votes.check(g, s, d, who, barred or set(), T0)
    return refusal.code if refusal else None


# ---- helpers -------------------------------------------------------------------------------


def test_merge_patch_follows_rfc_7396() -> None:
    """Objects merge key by key, null deletes, anything else replaces, the target is not changed."""
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    out = votes.merge_patch(
        target, {"a": None, "b": {"c": 9, "d": None, "x": {"y": 1}}, "e": [3], "n": 0}
    )
    assert out == {"b": {"c": 9, "x": {"y": 1}}, "e": [3], "n": 0}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}


def test_merge_patch_replaces_a_non_object_below() -> None:
    """A patch object over a scalar or a non-object target yields an object."""
    assert votes.merge_patch({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert votes.merge_patch("text", {"k": "v"}) == {"k": "v"}
    assert votes.merge_patch(None, {}) == {}


def test_merge_patch_handles_deep_nesting_without_recursion() -> None:
    """A patch nested far deeper than Python's recursion limit still merges."""
    patch: dict[str, Any] = {}
    inner = patch
    for _ in range(5_000):
        inner["k"] = {}
        inner = inner["k"]
    inner["leaf"] = 1
    out = votes.merge_patch({}, patch)
    depth = 0
    while "k" in out:
        out, depth = out["k"], depth + 1
    assert depth == 5_000 and out == {"leaf": 1}


def test_digest_is_canonical_and_sensitive() -> None:
    """Key order does not change the digest; any value does."""
    assert votes.digest_of({"a": 1, "b": 2}) == votes.digest_of({"b": 2, "a": 1})
    assert votes.digest_of({"a": 1}) != votes.digest_of({"a": 2})
    assert votes.digest_of({"a": 1}).startswith("sha256:") and len(votes.digest_of(1)) == 71


def test_a_role_is_never_a_user_and_a_user_never_a_role() -> None:
    """`role:ops` is matched only by the role ops; a user named ops, or a role named carol, matches
    nothing else."""
    assert votes.principals_of("ops", []) == ["user:ops"]
    assert votes.principals_of("x", ["carol", "ops"]) == ["user:x", "role:carol", "role:ops"]
    assert votes.eligible(["role:carol"], "x", ["carol"])
    assert votes.eligible(["user:x"], "x", [])
    assert not votes.eligible(["user:carol"], "x", ["carol"]), "a role is never a user"
    assert not votes.eligible(["role:x"], "x", []), "a user is never a role"
    assert not votes.eligible([], "x", ["carol"])
    g, s = gate(), spec()
    assert code(g, s, decision("approve", actor="ops", roles=[])) == "not_authorized"
    assert code(g, s, decision("approve", actor="x", roles=["carol"])) == "not_authorized"
    assert code(g, s, decision("approve", actor="carol", roles=[])) is None
    assert code(g, s, decision("approve", actor="x", roles=["ops"])) is None


# ---- who may vote ---------------------------------------------------------------------------


def test_check_refuses_a_decided_gate() -> None:
    """Nothing is cast on a gate that is no longer open."""
    g, s = gate(), spec()
    cast(g, s, decision("approve"))
    assert not g.open
    assert code(g, s, decision("approve", actor="bob")) == "gate_not_open"


def test_check_refuses_actions_not_offered() -> None:
    """Each stage offers its actions, narrowed by `allow`."""
    assert code(gate("before"), spec(), decision("retry")) == "action_not_allowed"
    assert (
        code(gate("on_failure"), spec(stage="on_failure"), decision("approve"))
        == "action_not_allowed"
    )
    assert (
        code(gate("on_failure"), spec(stage="on_failure"), decision("modify", patch={"a": 1}))
        == "action_not_allowed"
    )
    assert (
        code(gate("after"), spec(stage="after", allow=["approve"]), decision("reject"))
        == "action_not_allowed"
    )
    assert code(gate("after"), spec(stage="after"), decision("retry")) is None


@pytest.mark.parametrize("action", ["approve", "reject", "cancel", "skip"])
def test_one_vote_per_principal_per_subject(action: str) -> None:
    """Whoever voted on the subject shown, in any way, cannot vote on it again."""
    g, s = gate(), spec(quorum=3, rejections_to_reject=3)
    cast(g, s, decision(action))
    for again in ("approve", "reject", "cancel", "skip"):
        assert code(g, s, decision(again)) == "already_voted"
    assert code(g, s, decision("approve", actor="bob")) is None


@pytest.mark.parametrize(
    "action,patch", [("approve", None), ("modify", {"amount": 5}), ("skip", None)]
)
def test_self_approval_is_refused_for_every_go_on_action_at_before(action: str, patch: Any) -> None:
    """With forbid_self_approval the requester may not let the run go on in any way."""
    g, s = gate(), spec(forbid_self_approval=True)
    assert code(g, s, decision(action, patch=patch), requester="alice") == "self_approval"
    assert code(g, s, decision(action, patch=patch), requester="bob") is None


@pytest.mark.parametrize(
    "stage,action,patch",
    [
        ("after", "retry", {"amount": 1_000_000}),
        ("after", "retry", None),
        ("after", "skip", None),
        ("after", "modify", {"amount": 1}),
        ("on_failure", "retry", None),
        ("on_failure", "skip", {"substitute": True}),
    ],
)
def test_self_approval_covers_retry_and_skip(stage: str, action: str, patch: Any) -> None:
    """The requester cannot re-send their own call with a new amount, nor skip past a failure."""
    g, s = gate(stage), spec(stage=stage, forbid_self_approval=True)
    assert code(g, s, decision(action, patch=patch), requester="alice") == "self_approval"


def test_requester_may_still_stop_their_own_run() -> None:
    """Stopping is never self-approval: the requester may reject or cancel."""
    g, s = gate(), spec(forbid_self_approval=True, rejections_to_reject=2)
    assert code(g, s, decision("reject"), requester="alice") is None
    assert code(g, s, decision("cancel"), requester="alice") is None


def test_separation_of_duties_covers_every_go_on_action() -> None:
    """A principal barred by distinct_from may stop the run but not let it go on."""
    g, s = gate("after"), spec(stage="after", distinct_from=["build"])
    for action, patch in [("approve", None), ("modify", {"a": 1}), ("retry", None), ("skip", None)]:
        assert code(g, s, decision(action, patch=patch), barred={"alice"}) == "separation_of_duties"
    assert code(g, s, decision("reject"), barred={"alice"}) is None
    assert code(g, s, decision("approve"), barred={"bob"}) is None


def test_digest_must_match_what_is_shown() -> None:
    """A vote bound to another subject's digest is refused; the current digest is accepted."""
    g, s = gate(), spec()
    assert code(g, s, decision("approve", digest="sha256:" + "0" * 64)) == "digest_mismatch"
    assert code(g, s, decision("approve", digest=g.digest)) is None


def test_refusals_come_in_a_fixed_order() -> None:
    """The first problem found is the one reported: not open, action, who, repeat, self, barred,
    digest, patch."""
    g, s = gate(), spec(forbid_self_approval=True)
    bad = decision("approve", digest="sha256:x", patch={"a": 1})
    assert code(g, s, bad, requester="alice", barred={"alice"}) == "self_approval"
    assert code(g, s, bad, barred={"alice"}) == "separation_of_duties"
    assert code(g, s, bad) == "digest_mismatch"
    assert code(g, s, decision("approve", patch={"a": 1})) == "bad_patch"


@pytest.mark.parametrize(
    "stage,action,patch",
    [
        ("before", "approve", {"a": 1}),
        ("before", "reject", {"a": 1}),
        ("before", "cancel", {"a": 1}),
        ("before", "skip", {"a": 1}),
        ("after", "skip", {"a": 1}),
        ("before", "modify", None),
        ("before", "modify", {}),
        ("before", "modify", [1, 2]),
        ("after", "modify", "text"),
        ("after", "retry", [1]),
        ("after", "retry", 5),
        ("on_failure", "retry", "x"),
        ("on_failure", "skip", [1]),
    ],
)
def test_patches_are_objects_and_only_where_an_action_uses_one(
    stage: str, action: str, patch: Any
) -> None:
    """A patch that is not a JSON object, or one sent with an action that takes none, is refused."""
    assert code(gate(stage), spec(stage=stage), decision(action, patch=patch)) == "bad_patch"


@pytest.mark.parametrize(
    "stage,action,patch",
    [
        ("before", "modify", {"a": 1}),
        ("after", "retry", {"a": 1}),
        ("after", "retry", None),
        ("on_failure", "skip", {"s": 1}),
        ("on_failure", "skip", None),
        ("on_failure", "retry", {"a": 1}),
    ],
)
def test_patches_accepted_where_they_belong(stage: str, action: str, patch: Any) -> None:
    """Object patches go with modify, retry, and an on_failure skip's substitute output."""
    assert code(gate(stage), spec(stage=stage), decision(action, patch=patch)) is None


# ---- how votes add up -----------------------------------------------------------------------


def test_quorum_needs_distinct_principals() -> None:
    """A quorum-2 gate stays open after one approval and closes on the second principal's."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision("approve"))
    assert g.open and votes.tally(g, s) is None
    cast(g, s, decision("approve", actor="bob"))
    assert (g.outcome, g.decided_by, g.decided_at) == ("approve", ["alice", "bob"], T0)


def test_one_modify_does_not_pass_a_quorum_gate() -> None:
    """A single modify on a quorum-2 gate changes the subject and waits for a second approval of
    the new subject."""
    g, s = gate(), spec(quorum=2)
    before = g.digest
    cast(g, s, decision("modify", patch={"amount": 99}))
    assert g.open and g.modified and g.subject == {"amount": 99} and g.digest != before
    assert [v.digest for v in g.votes] == [g.digest]
    cast(g, s, decision("approve", actor="bob"))
    assert g.outcome == "modify" and g.decided_by == ["alice", "bob"]


def test_modify_voids_votes_on_the_old_subject() -> None:
    """Approvals of the old subject lapse: they no longer count towards the quorum, and their
    principals may vote again on the new subject."""
    g, s = gate(), spec(quorum=3)
    cast(g, s, decision("approve"), decision("approve", actor="bob"))
    cast(g, s, decision("modify", actor="carol", roles=[], patch={"amount": 1}))
    assert g.open and len(votes.live(g)) == 1 and len(g.votes) == 3
    cast(g, s, decision("approve"))
    assert g.open
    cast(g, s, decision("approve", actor="bob"))
    assert g.outcome == "modify" and g.decided_by == ["carol", "alice", "bob"]


def test_modify_that_changes_nothing_is_an_approval_of_the_same_subject() -> None:
    """A patch that leaves the subject as it was keeps the digest and the earlier votes."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision("approve"))
    cast(g, s, decision("modify", actor="bob", patch={"amount": 10}))
    assert g.outcome == "approve" and not g.modified


def test_one_skip_does_not_pass_a_quorum_gate() -> None:
    """Skip is a vote like any other; two principals must agree to skip."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision("skip"))
    assert g.open
    cast(g, s, decision("skip", actor="bob"))
    assert g.outcome == "skip"


def test_go_on_votes_count_only_for_the_same_outcome() -> None:
    """An approval and a skip are different outcomes; neither reaches a quorum of two alone."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision("approve"), decision("skip", actor="bob"))
    assert g.open
    cast(g, s, decision("skip", actor="carol", roles=[]))
    assert g.outcome == "skip" and g.decided_by == ["bob", "carol"]


def test_retries_agree_only_on_the_same_patch() -> None:
    """Two retries with different patches are different outcomes; the agreed patch is kept."""
    g, s = gate("after"), spec(stage="after", quorum=2)
    cast(g, s, decision("retry", patch={"n": 1}), decision("retry", actor="bob", patch={"n": 2}))
    assert g.open
    cast(g, s, decision("retry", actor="carol", roles=[], patch={"n": 2}))
    assert (g.outcome, g.patch, g.decided_by) == ("retry", {"n": 2}, ["bob", "carol"])


def test_one_cancel_does_not_override_rejections_to_reject() -> None:
    """With rejections_to_reject 3, one cancel and one reject leave the gate open."""
    g, s = gate(), spec(rejections_to_reject=3)
    cast(g, s, decision("cancel"), decision("reject", actor="bob"))
    assert g.open
    cast(g, s, decision("approve", actor="carol", roles=[]))
    assert g.outcome == "approve"


def test_stop_votes_decide_reject_unless_most_chose_cancel() -> None:
    """When enough principals chose to stop, cancel wins only if more chose cancel than reject;
    a tie rejects."""
    g, s = gate(), spec(rejections_to_reject=2)
    cast(g, s, decision("cancel"), decision("reject", actor="bob"))
    assert g.outcome == "reject"
    g = gate()
    cast(
        g,
        spec(rejections_to_reject=3),
        decision("cancel"),
        decision("reject", actor="bob"),
        decision("cancel", actor="carol", roles=[]),
    )
    assert g.outcome == "cancel" and g.decided_by == ["alice", "bob", "carol"]
    g = gate()
    cast(g, spec(), decision("cancel"))
    assert g.outcome == "cancel"


def test_votes_record_who_how_and_on_what() -> None:
    """Each vote keeps actor, roles, action, comment, patch and the subject's digest."""
    g, s = gate("after"), spec(stage="after", quorum=2)
    cast(g, s, decision("retry", comment="again", patch={"n": 1}))
    v = g.votes[0]
    assert (v.actor, v.roles, v.action, v.comment, v.patch, v.digest, v.at) == (
        "alice",
        ["ops"],
        "retry",
        "again",
        {"n": 1},
        g.digest,
        T0,
    )


def test_go_on_voters_include_lapsed_votes() -> None:
    """Separation of duties remembers everyone who voted to go on, whatever the subject."""
    g, s = gate(), spec(quorum=3, rejections_to_reject=2)
    cast(g, s, decision("approve"), decision("reject", actor="bob"))
    cast(g, s, decision("modify", actor="carol", roles=[], patch={"amount": 2}))
    assert votes.go_on_voters(g) == {"alice", "carol"}


def test_close_clears_the_next_reminder() -> None:
    """A decided gate sends no more reminders."""
    g = gate(next_reminder=T0)
    votes.close(g, "approve", ["x"], T0, None)
    assert g.next_reminder is None and g.patch is None


# ---- exact messages, digests and edge cases ---------------------------------------------------


def message(
    g: GateRecord,
    s: ApprovalSpec,
    d: Decision,
    requester: str | None = None,
    barred: set[str] | None = None,
) -> str | None:
    who = Principal(principal=requester) if requester else None
    refusal = votes.check(g, s, d, who, barred or set(), T0)
    return refusal.message if refusal else None


def test_digest_of_is_sha256_of_compact_sorted_json() -> None:
    """The digest is pinned: keys sorted, no spaces, non-JSON values as text, Unicode as is."""
    subject = {"b": [1, "é"], "a": {"at": T0}}
    assert canonical_json(subject) == '{"a":{"at":"2026-01-01 00:00:00+00:00"},"b":[1,"é"]}'
    assert (
        votes.digest_of(subject)
        == "sha256:a17674333622465c86ec9cb29fa03d7d4763f4076f9668cb22c0823fafef76f6"
    )
    assert (
        votes.digest_of({"amount": 10})
        == "sha256:a8b88b82fe90a16048eb8851fe382405395cd395dafaa7ca9be90ec00f82a72b"
    )


@pytest.mark.parametrize(
    ("stage", "d", "expected"),
    [
        (
            "before",
            decision("retry"),
            "action 'retry' is not offered at before gate 'pay' "
            "(allowed: approve, reject, modify, skip, cancel)",
        ),
        (
            "before",
            decision("approve", actor="bob", roles=["web", "dev"]),
            "'bob' with roles ['dev', 'web'] may not decide gate 'pay' "
            "(approvers: role:ops, user:carol)",
        ),
        ("before", decision("modify"), "modify needs a patch object"),
        ("before", decision("modify", patch={}), "modify needs a patch that changes something"),
        (
            "after",
            decision("retry", patch=[1]),
            "patch must be a JSON object (a merge patch), got list",
        ),
        (
            "before",
            decision("approve", patch={"a": 1}),
            "action 'approve' takes no patch at before gate 'pay'",
        ),
        (
            "before",
            decision("approve", digest="sha256:old"),
            "digest 'sha256:old' does not match what gate 'pay' is reviewing now "
            "(sha256:a8b88b82fe90a16048eb8851fe382405395cd395dafaa7ca9be90ec00f82a72b)",
        ),
    ],
)
def test_check_refusal_message_names_the_problem(stage: str, d: Decision, expected: str) -> None:
    """Each refusal says exactly what is wrong, with the gate, the actor and what is allowed."""
    assert message(gate(stage), spec(stage=stage), d) == expected


def test_check_refusal_messages_for_people() -> None:
    """Repeat votes, self-approval, separation of duties and a decided gate each say who and
    where."""
    g, s = gate(), spec(forbid_self_approval=True, distinct_from=["build", "test"], quorum=2)
    cast(g, s, decision("approve", actor="bob"))
    assert message(g, s, decision("reject", actor="bob")) == (
        "'bob' has already voted on this subject of gate 'pay'"
    )
    assert message(g, s, decision("skip"), requester="alice") == (
        "'alice' requested this run and may not skip at gate 'pay'"
    )
    assert message(g, s, decision("modify", patch={"a": 1}), barred={"alice"}) == (
        "'alice' voted at one of ['build', 'test'] and may not also modify at gate 'pay'"
    )
    cast(g, s, decision("approve"))
    assert message(g, s, decision("approve", actor="carol", roles=[])) == (
        "gate 'pay' is already decided (approve)"
    )


def test_self_approval_needs_a_requester() -> None:
    """A run started without a requester (a schedule, the CLI) has no one to bar."""
    g, s = gate(), spec(forbid_self_approval=True)
    assert votes.check(g, s, decision("approve"), None, set(), T0) is None


def test_merge_patch_keeps_untouched_keys_of_a_nested_object() -> None:
    """A nested patch changes only the keys it names; deleting an absent key is no error."""
    target = {"b": {"c": 2, "d": 3}, "k": 1}
    assert votes.merge_patch(target, {"b": {"c": 9}, "gone": None}) == {
        "b": {"c": 9, "d": 3},
        "k": 1,
    }
    assert target == {"b": {"c": 2, "d": 3}, "k": 1}


def test_proposed_is_the_patched_subject_only_for_a_modify() -> None:
    """A modify proposes the subject merged with its patch; any other action leaves the subject."""
    g = gate(subject={"amount": 10, "to": "acme"})
    assert votes.proposed(g, decision("modify", patch={"amount": 5})) == {"amount": 5, "to": "acme"}
    assert votes.proposed(g, decision("retry", patch={"amount": 5})) == {"amount": 10, "to": "acme"}


def test_modify_keeps_the_rest_of_the_subject() -> None:
    """The new subject of a modify is the old one with only the patched keys changed."""
    g, s = gate(subject={"amount": 10, "to": "acme"}), spec(quorum=2)
    cast(g, s, decision("modify", patch={"amount": 5}))
    assert g.subject == {"amount": 5, "to": "acme"}
    assert g.digest == votes.digest_of({"amount": 5, "to": "acme"})


def test_modify_back_to_the_first_subject_revives_its_votes() -> None:
    """Votes count for the subject they were cast on: when a second modify restores the first
    subject, the approvals of it count again, and the outcome is still a modify."""
    g, s = gate(), spec(quorum=3)
    cast(g, s, decision("approve"))
    cast(g, s, decision("modify", actor="carol", roles=[], patch={"amount": 99}))
    cast(g, s, decision("modify", actor="dave", patch={"amount": 10}))
    assert g.open and [v.actor for v in votes.live(g)] == ["alice", "dave"]
    cast(g, s, decision("approve", actor="bob"))
    assert (g.outcome, g.decided_by, g.subject) == (
        "modify",
        ["alice", "dave", "bob"],
        {"amount": 10},
    )


def test_votes_of_principals_the_approvers_no_longer_name_do_not_count() -> None:
    """An amendment that hands the same subject to other approvers (a plan re-assessed into
    another tier) leaves the votes of those it no longer names out of the tally, however they
    were cast; the new approvers decide by their own quorum."""
    g, s = gate(), spec(quorum=2)
    cast(g, s, decision("approve"))
    elders = votes.Amendment(g.subject, ["role:elder"])
    votes.cast(
        g, s, decision("modify", actor="eve", roles=["elder"], patch={"amount": 10}), T0, elders
    )
    assert g.open and [v.actor for v in votes.live(g)] == ["eve"]
    votes.cast(g, s, decision("approve", actor="eli", roles=["elder"]), T0)
    assert (g.outcome, g.decided_by) == ("approve", ["eve", "eli"])


def test_an_amendment_bars_whom_its_rules_forbid_from_voting_for_it() -> None:
    """A modifier the new approvers name but the amendment bars (the requester, where the new
    tier forbids self-approval) replaces the subject without a vote for it."""
    g, s = gate(), spec(quorum=1)
    new = {"amount": 99}
    barred = votes.Amendment(new, ["role:ops"], frozenset({"alice"}))
    votes.cast(g, s, decision("modify", patch=new), T0, barred)
    assert g.open and g.subject == new and votes.live(g) == []
    votes.cast(g, s, decision("modify", actor="bob", patch=new), T0, barred)
    assert (g.outcome, g.decided_by) == ("modify", ["bob"])


def test_quorum_is_reached_exactly_at_its_count() -> None:
    """One short of the quorum leaves the gate open; the vote that reaches it decides."""
    g, s = gate(), spec(quorum=3)
    cast(g, s, decision("approve"), decision("approve", actor="bob"))
    assert g.open
    cast(g, s, decision("approve", actor="carol", roles=[]))
    assert g.outcome == "approve"


def test_stop_votes_decide_exactly_at_rejections_to_reject() -> None:
    """One stop vote short leaves the gate open; the one that reaches the count decides."""
    g, s = gate(), spec(rejections_to_reject=2)
    cast(g, s, decision("reject"))
    assert g.open and votes.tally(g, s) is None
    cast(g, s, decision("reject", actor="bob"))
    assert (g.outcome, g.decided_by, g.patch) == ("reject", ["alice", "bob"], None)


def test_gate_states_name_every_outcome() -> None:
    """Each outcome maps to the gate state the status shows."""
    assert votes.GATE_STATE == {
        "approve": "approved",
        "modify": "modified",
        "skip": "skipped",
        "retry": "retried",
        "reject": "rejected",
        "cancel": "cancelled",
    }
