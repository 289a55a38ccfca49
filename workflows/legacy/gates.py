"""One approval gate: who may decide, quorum, refusals, and the digest of what is under review.

Pure and deterministic: the workflow owns time and persistence, this owns the rules.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from workflows.definition import ApprovalSpec, Stage
from workflows.models import (
    Decision,
    GateRefusal,
    GateState,
    GateSummary,
    GateView,
    Principal,
    Vote,
)

SYSTEM_ACTOR = "system"


def digest_of(subject: Any) -> str:
    """sha256 of the canonical JSON of what is under review."""
    text = json.dumps(subject, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396): objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def principals_of(actor: str, roles: list[str]) -> set[str]:
    return {f"user:{actor}"} | {f"role:{r}" for r in roles}


class Gate:
    def __init__(
        self,
        step_id: str,
        spec: ApprovalSpec,
        stage: Stage,
        round_: int,
        subject: Any,
        opened_at: datetime,
        deadline: datetime | None,
    ) -> None:
        self.step_id = step_id
        self.spec = spec
        self.stage = stage
        self.round = round_
        self.subject = subject
        self.digest = digest_of(subject)
        self.opened_at = opened_at
        self.deadline = deadline
        self.approvers = list(spec.approvers)
        self.escalated = False
        self.state: GateState = "open"
        self.approvals: list[Vote] = []
        self.rejections: list[Vote] = []
        self.outcome: str | None = None
        self.patch: Any = None
        self.decided_by: str | None = None
        self.decided_at: datetime | None = None

    @property
    def undecided(self) -> bool:
        return self.state == "open"

    def approved_by(self) -> set[str]:
        return {v.actor for v in self.approvals}

    def check(
        self, d: Decision, requester: Principal | None, barred: set[str]
    ) -> GateRefusal | None:
        """Why `d` cannot be applied now, or None when it can. `barred`: separation of duties."""
        if not self.undecided:
            return GateRefusal(
                code="gate_not_open", message=f"gate {self.step_id!r} is {self.state}"
            )
        actions = self.spec.actions()
        if d.action not in actions:
            return GateRefusal(
                code="action_not_allowed",
                message=f"action {d.action!r} is not offered at {self.stage} gate "
                f"{self.step_id!r} (allowed: {', '.join(actions)})",
            )
        if not principals_of(d.actor, d.roles) & set(self.approvers):
            return GateRefusal(
                code="not_authorized",
                message=f"{d.actor!r} with roles {sorted(d.roles)} may not decide gate "
                f"{self.step_id!r} (approvers: {', '.join(self.approvers)})",
            )
        if d.actor in self.approved_by() | {v.actor for v in self.rejections}:
            return GateRefusal(
                code="already_voted",
                message=f"{d.actor!r} has already voted on gate {self.step_id!r}",
            )
        approving = d.action in ("approve", "modify")
        if (
            approving
            and self.spec.forbid_self_approval
            and requester
            and requester.principal == d.actor
        ):
            return GateRefusal(
                code="self_approval",
                message=f"{d.actor!r} requested this run and may not approve gate {self.step_id!r}",
            )
        if approving and d.actor in barred:
            return GateRefusal(
                code="separation_of_duties",
                message=f"{d.actor!r} approved one of {self.spec.distinct_from} and may not "
                f"also approve gate {self.step_id!r}",
            )
        if d.digest is not None and d.digest != self.digest:
            return GateRefusal(
                code="digest_mismatch",
                message=f"digest {d.digest!r} does not match what gate {self.step_id!r} "
                f"is reviewing now ({self.digest})",
            )
        return self._check_patch(d)

    def _check_patch(self, d: Decision) -> GateRefusal | None:
        if d.action in ("approve", "reject", "cancel") and d.patch is not None:
            return GateRefusal(code="bad_patch", message=f"action {d.action!r} takes no patch")
        if d.action == "modify" and self.stage == "before" and not isinstance(d.patch, dict):
            return GateRefusal(
                code="bad_patch",
                message="modify at a before gate needs a patch object for the inputs",
            )
        if d.action == "modify" and d.patch is None:
            return GateRefusal(code="bad_patch", message="modify needs a patch")
        if d.action == "retry" and d.patch is not None and not isinstance(d.patch, dict):
            return GateRefusal(
                code="bad_patch", message="retry takes a patch object for the inputs"
            )
        return None

    def apply(self, d: Decision, now: datetime) -> None:
        """Record an accepted decision; close the gate when it is decided."""
        vote = Vote(actor=d.actor, action=d.action, comment=d.comment, at=now)
        if d.action == "approve":
            self.approvals.append(vote)
            if len(self.approvals) >= self.spec.quorum:
                self.close("approve", d.actor, now)
        elif d.action == "reject":
            self.rejections.append(vote)
            if len(self.rejections) >= self.spec.rejections_to_reject:
                self.close("reject", d.actor, now)
        else:
            if d.action == "modify":
                self.approvals.append(vote)
            self.close(d.action, d.actor, now, d.patch)

    def close(self, outcome: str, by: str, now: datetime, patch: Any = None) -> None:
        self.outcome = outcome
        self.patch = patch
        self.decided_by = by
        self.decided_at = now
        self.state = {
            "approve": "approved",
            "reject": "rejected",
            "modify": "modified",
            "retry": "retried",
            "skip": "skipped",
            "cancel": "cancelled",
        }[outcome]  # type: ignore[assignment]

    def escalate(self, deadline: datetime | None) -> None:
        self.escalated = True
        self.approvers = list(dict.fromkeys([*self.approvers, *self.spec.escalate_to]))
        self.deadline = deadline

    def summary(self, subject: Any, limit: int) -> GateSummary:
        """The inbox line: the subject only when its JSON fits in `limit` characters."""
        small = len(json.dumps(subject, default=str)) <= limit
        return GateSummary(
            gate=self.step_id,
            stage=self.stage,
            round=self.round,
            approvers=self.approvers,
            actions=list(self.spec.actions()),
            voted=[v.actor for v in (*self.approvals, *self.rejections)],
            digest=self.digest,
            review=self.spec.review,
            subject=subject if small else None,
            subject_truncated=not small,
            opened_at=self.opened_at,
            deadline=self.deadline,
        )

    def view(self, subject_preview: Any = None) -> GateView:
        return GateView(
            gate=self.step_id,
            stage=self.stage,
            state=self.state,
            round=self.round,
            approvers=self.approvers,
            escalated=self.escalated,
            quorum=self.spec.quorum,
            approvals=self.approvals,
            rejections=self.rejections,
            actions=list(self.spec.actions()),
            digest=self.digest,
            review=self.spec.review,
            subject=subject_preview if subject_preview is not None else self.subject,
            opened_at=self.opened_at,
            deadline=self.deadline,
            decided_at=self.decided_at,
            outcome=self.outcome,
            decided_by=self.decided_by,
        )
