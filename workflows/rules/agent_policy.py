"""How each call an agent's model proposes is decided before anything runs: by the tool's risk,
the step's and the entry's `policy`, the entry's `when` over the call's arguments; and the run's
standing grants (made with an approval at a call gate, matched, used, revoked). Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activities.models import PathError, walk_path
from workflows.agent_models import GrantView, RevokeGrant
from workflows.language import expr
from workflows.language.agent import STRICTNESS, AgentSpec, AgentToolSpec, Policy, Risk
from workflows.language.definition import ApprovalSpec, StepSpec
from workflows.language.durations import parse_duration
from workflows.language.limits import MAX_GRANTS
from workflows.models import AuditEntry, GateRefusal
from workflows.rules.agent_state import Grant
from workflows.rules.records import GateRecord
from workflows.rules.state import RunData
from workflows.rules.votes import digest_of, live

# A risk as the check reported it; anything else counts as high.
RISKS: dict[str, Risk] = {"low": "low", "medium": "medium", "high": "high"}


def policy_of(
    agent: AgentSpec, entry: AgentToolSpec, risk: str | None, args: dict[str, Any]
) -> tuple[Policy, str]:
    """Run it, ask a person, or refuse it, and why. A `when` that cannot be evaluated takes the
    most careful of the entry's policy, the default and `approve`."""
    default, why = agent.default_policy(RISKS.get(risk or "", "high"))
    if entry.policy is None:
        return default, why
    if entry.when is None:
        return entry.policy, f"the entry's policy is {entry.policy}"
    try:
        held = when_holds(entry.when, args)
    except expr.ExpressionError as err:
        careful = max((entry.policy, default, "approve"), key=STRICTNESS.index)
        return careful, f"`when` could not be evaluated ({err}): {careful}"
    if held:
        return entry.policy, f"`{entry.when}` held: {entry.policy}"
    return default, f"`{entry.when}` did not hold: {why}"


def when_holds(condition: str, args: dict[str, Any]) -> bool:
    """`condition` over `args.<field>`; a field the call does not have reads as null."""

    def lookup(path: str) -> Any:
        root, _, rest = path.partition(".")
        if root != "args":
            return None
        try:
            return walk_path(args, rest.split(".") if rest else [], path)
        except PathError:
            return None

    return expr.truthy(expr.evaluate(expr.parse(condition), lookup))


def call_approval(spec: StepSpec, entry: AgentToolSpec) -> ApprovalSpec | None:
    """Who decides this tool's calls: the entry's approval, else the step's."""
    return entry.approval or spec.approval


def rules_of(spec: ApprovalSpec) -> str:
    """The digest of the gate rules a grant is given under: it covers only calls whose gates
    would follow the very same rules (the same approvers, quorum, separation of duties)."""
    return digest_of(spec.model_dump(mode="json"))


def covering(
    state: RunData, tool: str, rules: str, args: dict[str, Any], now: datetime
) -> Grant | None:
    """The first active grant that lets this call run without a gate."""
    digest = digest_of(args)
    for grant in state.grants:
        if grant.state(now) != "active" or grant.tool != tool or grant.rules != rules:
            continue
        if grant.arguments is None or grant.arguments == digest:
            return grant
    return None


def make_grant(
    state: RunData, gate: GateRecord, rules: str, now: datetime
) -> tuple[Grant | None, str | None]:
    """The grant an approval made, if every approval that decided the gate asked for one: as
    narrow as the narrowest of them. Or why none was made."""
    deciding = [v for v in live(gate) if v.actor in gate.decided_by]
    asked = [v.grant for v in deciding if v.grant is not None]
    if not asked:
        return None, None
    if len(asked) < len(deciding) or gate.outcome not in ("approve", "modify"):
        return None, "not every approval that decided the gate asked for a grant"
    if len(state.grants) >= MAX_GRANTS:
        return None, f"the run holds {MAX_GRANTS} grants already"
    expires = min(parse_duration(g.expires_in) for g in asked)
    counts = [g.calls for g in asked if g.calls is not None]
    grant = Grant(
        id=f"g{len(state.grants) + 1}",
        tool=gate.tool or "",
        step=gate.step,
        gate=gate.gate,
        rules=rules,
        arguments=digest_of(_arguments(gate)) if any(g.same_arguments for g in asked) else None,
        granted_by=list(gate.decided_by),
        granted_at=now,
        expires_at=now + expires,
        calls=min(counts) if counts else None,
    )
    state.grants.append(grant)
    return grant, None


def _arguments(gate: GateRecord) -> Any:
    return gate.subject.get("arguments") if isinstance(gate.subject, dict) else None


def granted(grant: Grant) -> str:
    """How the audit and the status say a call ran under a grant."""
    return f"granted by {', '.join(grant.granted_by)} at {grant.gate} (grant {grant.id})"


def revoke(state: RunData, req: RevokeGrant, now: datetime) -> Grant | GateRefusal:
    """End a grant: its granters and admins may."""
    grant = may_revoke(state, req, now)
    if isinstance(grant, GateRefusal):
        return grant
    grant.revoked_by, grant.revoked_at = req.actor, now
    state.record(
        AuditEntry(
            at=now,
            kind="grant",
            gate=grant.gate,
            actor=req.actor,
            action="revoke",
            reason=req.reason or f"grant {grant.id} revoked",
            via="update",
        )
    )
    return grant


def may_revoke(state: RunData, req: RevokeGrant, now: datetime) -> Grant | GateRefusal:
    """The grant `req` may end, or why not (the update's validator asks this)."""
    grant = next((g for g in state.grants if g.id == req.grant), None)
    if grant is None:
        return GateRefusal(code="unknown_grant", message=f"run has no grant {req.grant!r}")
    if req.actor not in grant.granted_by and not req.admin:
        return GateRefusal(
            code="not_authorized",
            message=f"{req.actor!r} did not give grant {grant.id!r} "
            f"({', '.join(grant.granted_by)} did) and is not an admin",
        )
    if grant.state(now) != "active":
        return GateRefusal(
            code="grant_not_active", message=f"grant {grant.id!r} is {grant.state(now)} already"
        )
    return grant


def grant_view(g: Grant, now: datetime) -> GrantView:
    return GrantView(
        id=g.id,
        tool=g.tool,
        step=g.step,
        gate=g.gate,
        granted_by=list(g.granted_by),
        granted_at=g.granted_at,
        expires_at=g.expires_at,
        calls=g.calls,
        used=g.used,
        same_arguments=g.arguments is not None,
        state=g.state(now),
        revoked_by=g.revoked_by,
        revoked_at=g.revoked_at,
    )
