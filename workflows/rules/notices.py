"""What a gate's notify tool is told besides the text (a `GateNotice`), the chat posts its
notifications made (kept on the gate, to be updated), and the one "decided" notice a gate with
posts gets once it closes, however it closed. Pure functions of the state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from activities.notice import (
    MAX_NAME_CHARS,
    MAX_POSTS,
    NOTICE_TOOLS,
    GateNotice,
    NoticeEvent,
    NoticeResult,
    PostRef,
)
from workflows.language.definition import ApprovalSpec, Definition
from workflows.rules.bounds import cut, names
from workflows.rules.gates import Notify
from workflows.rules.state import GateRecord, RunData
from workflows.rules.view import preview
from workflows.rules.votes import shown_as

# A notice's fields as GateNotice bounds them.
REVIEW_CHARS = 4_000
ID_CHARS = 1_000
# The rules' word for each event, as a notice names it.
EVENTS: dict[str, NoticeEvent] = {
    "opened": "opened",
    "reminder": "reminder",
    "escalated": "escalation",
    "decided": "decided",
    # What quiet hours held, delivered once they end: the gate still waits for a decision.
    "held": "opened",
}
# How far ahead a held notification may be delivered: a daily quiet window ends within a day.
MAX_HOLD = timedelta(days=2)


def takes_notice(tool: str) -> bool:
    """Whether a notify tool (`name` or `name@version`) is told of the gate as a `GateNotice`."""
    return tool.partition("@")[0] in NOTICE_TOOLS


def gate_notice(
    gate: GateRecord,
    spec: ApprovalSpec,
    d: Definition,
    workflow_id: str,
    event: str,
    only: tuple[str, ...] = (),
) -> GateNotice:
    """The gate as its notify tool is told of it: who may decide what, by when, how urgent,
    what to review; once decided, how, by whom and the posts to update; `only` whom to tell
    (what quiet hours held). Every field within GateNotice's bounds, whatever the gate holds."""
    decided = event == "decided"
    return GateNotice(
        event=EVENTS[event],
        pipeline=cut(d.name, MAX_NAME_CHARS),
        version=str(d.version),
        workflow_id=cut(workflow_id, ID_CHARS),
        gate=cut(gate.gate, ID_CHARS),
        step=cut(gate.step, ID_CHARS),
        stage=gate.stage,
        round=gate.round,
        digest=cut(gate.digest, MAX_NAME_CHARS),
        approvers=names(gate.approvers),  # at most bounds.APPROVERS, as GateNotice allows
        actions=list(spec.actions()),
        priority=gate.priority,
        deadline=gate.deadline,
        review=cut(gate.review or spec.review or preview(gate.subject, 300), REVIEW_CHARS),
        has_form=spec.form is not None,
        outcome=gate.outcome if decided else None,
        decided_by=names(_deciders(gate)) if decided else [],
        decided_at=gate.decided_at if decided else None,
        posts=list(gate.posts) if decided else [],
        only=names(only),
    )


def _deciders(gate: GateRecord) -> list[str]:
    """Who decided, a delegate shown as `bob for alice`."""
    behalf = {v.actor: v.on_behalf_of for v in gate.votes if v.on_behalf_of is not None}
    return [shown_as(who, behalf.get(who)) for who in gate.decided_by]


def posts_of(output: Any) -> list[PostRef]:
    """The chat posts a notify tool's output names (a `NoticeResult`); none from any other
    output."""
    try:
        return NoticeResult.model_validate(output).posts
    except ValidationError:
        return []


def held_of(output: Any) -> tuple[list[str], datetime | None]:
    """Who a notify tool's output (a `NoticeResult`) says quiet hours held, and until when;
    nobody for any other output."""
    try:
        result = NoticeResult.model_validate(output)
    except ValidationError:
        return [], None
    return result.held, result.held_until


def keep_held(
    state: RunData,
    gate_id: str,
    round_: int,
    held: list[str],
    until: datetime | None,
    now: datetime,
) -> None:
    """Keep who a notification of round `round_` of a gate held, to tell them at `until` (the
    earliest end of their quiet hours, kept when several notifications held someone). Nothing
    for a gate that closed or moved to another round meanwhile, or an `until` not within
    MAX_HOLD after `now`."""
    found = state.gate(gate_id)
    if found is None or not found[1].open or found[1].round != round_ or not held:
        return
    if until is None or not now < until <= now + MAX_HOLD:
        return
    gate = found[1]
    gate.held = names(list(dict.fromkeys([*gate.held, *held])))
    gate.held_until = until if gate.held_until is None else min(gate.held_until, until)


def keep_posts(
    state: RunData, unit_id: str, gate_id: str, round_: int, posts: list[PostRef]
) -> list[Notify]:
    """Keep the posts a notification of round `round_` of a gate made (the first MAX_POSTS,
    each once); the "decided" notice now due if the gate closed meanwhile. Posts of a round the
    gate has left behind are dropped: that record is gone."""
    found = state.gate(gate_id)
    if found is None or found[1].round != round_:
        return []
    gate = found[1]
    for post in posts:
        if len(gate.posts) < MAX_POSTS and post not in gate.posts:
            gate.posts.append(post)
    return _due(unit_id, gate)


def decided_notices(state: RunData) -> list[Notify]:
    """A "decided" notice for each closed gate with posts not yet told it closed."""
    return [n for unit, gate in state.gates() for n in _due(unit.id, gate)]


def _due(unit_id: str, gate: GateRecord) -> list[Notify]:
    if gate.open or len(gate.posts) <= gate.posts_told:
        return []
    gate.posts_told = len(gate.posts)
    return [Notify(unit_id, gate.gate, "decided")]
