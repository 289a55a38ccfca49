"""The rules of a decision at a gate (DESIGN.md, "Decisions at a gate"), as pure functions.

Every path that decides a gate (the update, the signal, the API, batches, timeouts) goes through
`check` and `cast`. A vote is cast on a subject: the digest of what the gate shows when it is cast.
Only votes on the current subject count, so a `modify`, which replaces the subject, leaves every
earlier vote behind without erasing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities.documents import canonical_json
from activities.documents import digest_of as digest_of
from workflows.language.definition import ApprovalSpec
from workflows.models import Decision, GateRefusal, GateState, Principal, Vote
from workflows.rules.state import GateRecord, Outcome

GO_ON = ("approve", "modify", "skip", "retry")
STOP = ("reject", "cancel")
SYSTEM_ACTOR = "system"


def merge_patch(target: Any, patch: dict[str, Any]) -> Any:
    """JSON Merge Patch (RFC 7396) of an object patch: objects merge, null deletes a key, any other
    value replaces. Iterative, so a deeply nested patch cannot exhaust the stack."""
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    todo: list[tuple[dict[str, Any], dict[str, Any]]] = [(result, patch)]
    while todo:
        into, changes = todo.pop()
        for key, value in changes.items():
            if value is None:
                into.pop(key, None)
            elif isinstance(value, dict):
                below = into.get(key)
                into[key] = dict(below) if isinstance(below, dict) else {}
                todo.append((into[key], value))
            else:
                into[key] = value
    return result


def principals_of(actor: str, roles: Iterable[str]) -> list[str]:
    """Who a decider is at a gate: `user:<actor>`, then `role:<r>` for each role; a role is
    never a user. The API's inbox filter and permission checks ask the same function."""
    return [f"user:{actor}", *(f"role:{r}" for r in roles)]


def eligible(approvers: Iterable[str], actor: str, roles: Iterable[str]) -> bool:
    """Whether a gate with these approvers names the decider, as a user or by a role."""
    return not set(principals_of(actor, roles)).isdisjoint(approvers)


def live(gate: GateRecord) -> list[Vote]:
    """The votes cast on the subject the gate shows now, by principals its approvers name now
    (a governed plan amended into another tier is decided by that tier's approvers alone); a
    delegate's vote counts while the gate names the principal it was cast for."""
    return [v for v in gate.votes if v.digest == gate.digest and _named(gate, v)]


def _named(gate: GateRecord, v: Vote) -> bool:
    if v.on_behalf_of is not None:
        return f"user:{v.on_behalf_of}" in gate.approvers
    return eligible(gate.approvers, v.actor, v.roles)


def voter(v: Vote) -> str:
    """The person a vote counts for: the absent principal a delegate voted for, else its caster."""
    return v.on_behalf_of or v.actor


def shown_as(actor: str, on_behalf_of: str | None) -> str:
    """How a vote's caster is shown: `bob for alice` when bob voted as alice's delegate."""
    return f"{actor} for {on_behalf_of}" if on_behalf_of else actor


def go_on_voters(gate: GateRecord) -> set[str]:
    """Everyone who voted to let the run go on at this gate, on any subject: a delegate and the
    principal they voted for alike."""
    out: set[str] = set()
    for v in gate.votes:
        if v.action in GO_ON:
            out |= {v.actor, voter(v)}
    return out


def represented(gate: GateRecord, d: Decision, now: datetime) -> str | GateRefusal | None:
    """Whom `d` votes for: None when the gate names the decider (that always wins), else the
    absent principal of the first delegation in force whose `user:` the gate names (one who has
    not voted yet, if any), else why the decider may not decide: not named, or a delegation
    that has ended."""
    if eligible(gate.approvers, d.actor, d.roles):
        return None
    named = [g for g in d.delegations if f"user:{g.principal}" in gate.approvers]
    active = [g for g in named if now <= g.until]
    if active:
        voted = {voter(v) for v in live(gate)}
        fresh = [g for g in active if g.principal not in voted]
        return (fresh or active)[0].principal
    if named:
        ended = named[0]
        return _refusal(
            "not_authorized",
            f"{d.actor!r} may not decide gate {gate.gate!r}: the delegation from "
            f"{ended.principal!r} expired at {ended.until.isoformat()}",
        )
    return _refusal(
        "not_authorized",
        f"{d.actor!r} with roles {sorted(d.roles)} may not decide gate {gate.gate!r} "
        f"(approvers: {', '.join(gate.approvers)})",
    )


def _refusal(code: str, message: str) -> GateRefusal:
    return GateRefusal(code=code, message=message)


def check(
    gate: GateRecord,
    spec: ApprovalSpec,
    d: Decision,
    requester: Principal | None,
    barred: set[str],
    now: datetime,
) -> GateRefusal | None:
    """Why `d` cannot be cast on `gate` now, or None. `barred`: who voted to go on at the gates
    this one must be distinct from. A delegate votes for the absent principal (`represented`):
    one person, one vote, and the rules on who may go on hold for both of them."""
    if not gate.open:
        return _refusal("gate_not_open", f"gate {gate.gate!r} is already decided ({gate.outcome})")
    actions = spec.actions()
    if d.action not in actions:
        return _refusal(
            "action_not_allowed",
            f"action {d.action!r} is not offered at {gate.stage} gate {gate.gate!r} "
            f"(allowed: {', '.join(actions)})",
        )
    for_ = represented(gate, d, now)
    if isinstance(for_, GateRefusal):
        return for_
    who = shown_as(d.actor, for_)
    person = for_ or d.actor
    if any(v.actor == d.actor or voter(v) == person for v in live(gate)):
        return _refusal(
            "already_voted", f"{who!r} has already voted on this subject of gate {gate.gate!r}"
        )
    if d.action in GO_ON:
        return _may_go_on(gate, spec, d, for_, requester, barred) or _digest_and_patch(gate, d)
    return _digest_and_patch(gate, d)


def _may_go_on(
    gate: GateRecord,
    spec: ApprovalSpec,
    d: Decision,
    for_: str | None,
    requester: Principal | None,
    barred: set[str],
) -> GateRefusal | None:
    """Self-approval and separation of duties, for the decider and whom they vote for."""
    for p in [d.actor, *([for_] if for_ is not None else [])]:
        them = "" if p == d.actor else f" (nor may {d.actor!r} for them)"
        if spec.forbid_self_approval and requester and requester.principal == p:
            return _refusal(
                "self_approval",
                f"{p!r} requested this run and may not {d.action}{them} at gate {gate.gate!r}",
            )
        if p in barred:
            return _refusal(
                "separation_of_duties",
                f"{p!r} voted at one of {spec.distinct_from} and may not also "
                f"{d.action}{them} at gate {gate.gate!r}",
            )
    return None


def _digest_and_patch(gate: GateRecord, d: Decision) -> GateRefusal | None:
    if d.digest is not None and d.digest != gate.digest:
        return _refusal(
            "digest_mismatch",
            f"digest {d.digest!r} does not match what gate {gate.gate!r} is reviewing now "
            f"({gate.digest})",
        )
    return check_patch(gate, d)


def check_patch(gate: GateRecord, d: Decision) -> GateRefusal | None:
    """Patches are JSON objects, and only the actions that use one take one; at an agent call
    gate a patch holds the call's arguments and nothing else, and a grant goes with approve."""
    if d.grant is not None and (gate.call is None or d.action != "approve"):
        where = f"agent call gate {gate.gate!r}" if gate.call is not None else f"gate {gate.gate!r}"
        return _refusal(
            "bad_grant",
            f"a grant goes with approve at an agent call gate, not {d.action} at {where}",
        )
    if gate.call is not None and d.patch is not None and not _arguments_only(d.patch):
        return _refusal(
            "bad_patch",
            f'at agent call gate {gate.gate!r} the patch is {{"arguments": {{...}}}}: it changes '
            "the call's arguments, never its tool",
        )
    takes = d.action in ("modify", "retry") or (d.action == "skip" and gate.stage == "on_failure")
    if d.patch is None:
        if d.action == "modify":
            return _refusal("bad_patch", "modify needs a patch object")
        return None
    if not takes:
        return _refusal(
            "bad_patch", f"action {d.action!r} takes no patch at {gate.stage} gate {gate.gate!r}"
        )
    if not isinstance(d.patch, dict):
        return _refusal(
            "bad_patch",
            f"patch must be a JSON object (a merge patch), got {type(d.patch).__name__}",
        )
    if d.action == "modify" and not d.patch:
        return _refusal("bad_patch", "modify needs a patch that changes something")
    return None


def _arguments_only(patch: Any) -> bool:
    return (
        isinstance(patch, dict)
        and set(patch) == {"arguments"}
        and isinstance(patch["arguments"], dict)
    )


def proposed(gate: GateRecord, d: Decision) -> Any:
    """What the gate's subject becomes if `d` is cast (a modify's patched subject)."""
    if d.action == "modify" and isinstance(d.patch, dict):
        return merge_patch(gate.subject, d.patch)
    return gate.subject


@dataclass(frozen=True)
class Amendment:
    """What a modify makes of a gate when the caller works it out itself (a governed plan is
    checked and assessed again): the new subject, the approvers that subject needs, and who may
    not vote for it although those approvers name them (the requester, when its rules forbid
    self-approval)."""

    subject: Any
    approvers: list[str]
    barred: frozenset[str] = frozenset()


def cast(
    gate: GateRecord,
    spec: ApprovalSpec,
    d: Decision,
    now: datetime,
    amendment: Amendment | None = None,
) -> Vote | None:
    """Record an admitted vote (returned: None when a modify's vote does not count); decide the
    gate when enough principals agree. A modify replaces
    the subject (by default with its merge patch), so earlier votes lapse; the modifier's vote
    counts for the new subject only if its approvers name them and its rules let them vote (a
    peer who raises a plan to the elders' tier cannot approve it for them, nor can a requester
    whose plan moves to a tier that forbids self-approval)."""
    if d.action == "modify":
        subject = proposed(gate, d) if amendment is None else amendment.subject
        digest = digest_of(subject)
        if digest != gate.digest:
            gate.subject, gate.digest, gate.modified = subject, digest, True
        if amendment is not None:
            gate.approvers = list(amendment.approvers)
    for_ = represented(gate, d, now)
    if isinstance(for_, GateRefusal):
        return None  # a modify's new subject whose approvers name neither them nor for whom
    if amendment is not None and not amendment.barred.isdisjoint({d.actor, for_}):
        return None
    vote = Vote(
        actor=d.actor,
        action=d.action,
        comment=d.comment,
        at=now,
        roles=list(d.roles),
        digest=gate.digest,
        patch=d.patch,
        grant=d.grant,
        response=d.response,
        on_behalf_of=for_,
        channel=d.channel,
    )
    gate.votes.append(vote)
    decided = tally(gate, spec)
    if decided is not None:
        outcome, by, patch = decided
        close(gate, outcome, by, now, patch)
        gate.response = d.response  # the deciding vote's answers to the gate's form
    return vote


def tally(gate: GateRecord, spec: ApprovalSpec) -> tuple[Outcome, list[str], Any] | None:
    """The outcome the live votes carry, if any: `rejections_to_reject` distinct principals who
    chose to stop (cancel only if more of them chose cancel than reject), or `quorum` distinct
    principals who chose the same way to go on (the same action, the same patch)."""
    votes = live(gate)
    stops = [v for v in votes if v.action in STOP]
    if persons(stops) >= spec.rejections_to_reject:
        cancels = sum(v.action == "cancel" for v in stops)
        outcome: Outcome = "cancel" if cancels * 2 > len(stops) else "reject"
        return outcome, [v.actor for v in stops], None
    groups: dict[str, list[Vote]] = {}
    for v in votes:
        if v.action in GO_ON:
            way = "approve" if v.action == "modify" else v.action
            key = way if way == "approve" else f"{way}:{canonical_json(v.patch)}"
            groups.setdefault(key, []).append(v)
    for key, group in groups.items():
        if persons(group) >= spec.quorum:
            if key == "approve":
                return ("modify" if gate.modified else "approve"), [v.actor for v in group], None
            first = group[0]
            return first.action, [v.actor for v in group], first.patch  # type: ignore[return-value]
    return None


def persons(group: list[Vote]) -> int:
    """How many distinct persons a group of votes comes from (a delegate's vote is its
    principal's)."""
    return len({voter(v) for v in group})


def close(gate: GateRecord, outcome: Outcome, by: list[str], now: datetime, patch: Any) -> None:
    gate.outcome = outcome
    gate.decided_by = by
    gate.decided_at = now
    gate.patch = patch
    gate.next_reminder = None


GATE_STATE: dict[str, GateState] = {
    "approve": "approved",
    "modify": "modified",
    "skip": "skipped",
    "retry": "retried",
    "reject": "rejected",
    "cancel": "cancelled",
}
