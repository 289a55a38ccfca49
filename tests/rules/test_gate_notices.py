"""What a notify tool is told of a gate (the GateNotice), the chat posts kept on the gate, and the
one "decided" notice a gate with posts gets when it closes, however it closes."""

from __future__ import annotations

from tests.rules.sim import T0, Sim
from workflows.models import Vote
from workflows.rules import lifecycle, notices
from workflows.rules.gates import Notify
from workflows.rules.notices import MAX_POSTS, PostRef

GATED = """
name: pay
version: 3
steps:
  - id: a
    tool: t.x
    with: {amount: 10}
    approval:
      approvers: ["role:ops", "user:alice"]
      timeout: 1h
      %s
"""


def opened(extra: str = "review: check it") -> Sim:
    sim = Sim(GATED % extra)
    sim.advance()
    return sim


def post(n: int, channel: str = "C1") -> PostRef:
    return PostRef(channel=channel, ts=f"{n}.0")


def notice(sim: Sim, event: str = "opened") -> notices.GateNotice:
    spec = sim.d.step("a").approval
    assert spec is not None
    return notices.gate_notice(sim.gate("a"), spec, sim.d, "wf-1", event)


def test_the_notice_of_an_open_gate_says_who_what_and_by_when() -> None:
    """Opened: pipeline, version, run, gate, step, stage, round, digest, approvers, actions,
    priority, deadline, review, form; nothing of a decision."""
    sim = opened("review: check it\n      form: {type: object, properties: {t: {type: string}}}")
    n = notice(sim)
    g = sim.gate("a")
    assert n.model_dump(exclude={"deadline"}) == {
        "event": "opened",
        "pipeline": "pay",
        "version": "3",
        "workflow_id": "wf-1",
        "gate": "a",
        "step": "a",
        "stage": "before",
        "round": 0,
        "digest": g.digest,
        "approvers": ["role:ops", "user:alice"],
        "actions": ["approve", "reject", "modify", "skip", "cancel"],
        "priority": "normal",
        "review": "check it",
        "has_form": True,
        "outcome": None,
        "decided_by": [],
        "decided_at": None,
        "posts": [],
        "only": [],
    }
    assert n.deadline == g.deadline and g.deadline is not None


def test_the_notice_previews_the_subject_without_a_review_and_bounds_every_field() -> None:
    """No review text: a preview of the subject; an escalated gate's 200 approvers are cut to
    100, a long review to 4,000 characters; the rules' `escalated` is the notice's
    `escalation`."""
    sim = opened("allow: [approve, reject]")
    assert notice(sim).review == '{"amount": 10}' and not notice(sim).has_form
    assert notice(sim).actions == ["approve", "reject"]
    g = sim.gate("a")
    g.approvers = [f"user:u{i}" for i in range(200)]
    g.review = "x" * 5_000
    n = notice(sim, "escalated")
    assert n.event == "escalation" and len(n.approvers) == 100 and len(n.review) == 4_000
    assert [notice(sim, e).event for e in ("reminder", "decided")] == ["reminder", "decided"]


def test_the_decided_notice_says_how_by_whom_and_when_and_names_the_posts() -> None:
    """Decided: the outcome, who decided (a delegate as `bob for alice`), when, and the posts
    to update."""
    sim = opened()
    g = sim.gate("a")
    g.posts = [post(1)]
    g.votes.append(Vote(actor="bob", action="approve", at=T0, on_behalf_of="alice"))
    g.outcome, g.decided_by, g.decided_at = "approve", ["carol", "bob"], T0
    n = notice(sim, "decided")
    assert (n.outcome, n.decided_by, n.decided_at, n.posts) == (
        "approve",
        ["carol", "bob for alice"],
        T0,
        [post(1)],
    )
    assert notice(sim, "reminder").posts == [] and notice(sim, "reminder").outcome is None


def test_only_the_notice_tools_take_a_notice() -> None:
    """notify.webhook, notify.slack and notify.email (pinned to a version or not) take the gate;
    any other tool gets the text alone."""
    assert all(notices.takes_notice(t) for t in ("notify.webhook", "notify.slack@1.2.0"))
    assert notices.takes_notice("notify.email")
    assert not any(notices.takes_notice(t) for t in ("test.ledger", "notify.teams", "notify"))


def test_posts_are_read_from_a_notice_result_only() -> None:
    """A NoticeResult's posts are kept; any other output (none, a list, malformed posts) has
    none."""
    good = {"posts": [{"channel": "C1", "ts": "1.0"}], "held": [], "sent": 1}
    assert notices.posts_of(good) == [post(1)]
    for other in (None, [1], {"posts": [{"channel": ""}]}, {"posts": "x"}):
        assert notices.posts_of(other) == []


def test_posts_are_kept_once_each_and_at_most_max_posts() -> None:
    """Posts add up over the gate's notifications, each once, the first MAX_POSTS of them; an
    open gate owes no decided notice yet."""
    sim = opened()
    assert notices.keep_posts(sim.state, "a", "a", 0, [post(1), post(1), post(2)]) == []
    assert sim.gate("a").posts == [post(1), post(2)]
    notices.keep_posts(sim.state, "a", "a", 0, [post(n) for n in range(MAX_POSTS + 5)])
    assert len(sim.gate("a").posts) == MAX_POSTS
    assert sim.gate("a").posts[:3] == [post(1), post(2), post(0)]


def test_posts_of_a_round_left_behind_or_an_unknown_gate_are_dropped() -> None:
    """The posts of round 0 arriving once round 1 is open are not those of its record."""
    sim = opened()
    assert notices.keep_posts(sim.state, "a", "a", 1, [post(1)]) == []
    assert notices.keep_posts(sim.state, "z", "z", 0, [post(1)]) == []
    assert sim.gate("a").posts == []


def test_a_gate_decided_before_its_posts_came_back_is_told_when_they_do() -> None:
    """The posts arrive after the decision: the decided notice is due at once, and only once."""
    sim = opened()
    assert sim.vote("a", "approve") is None
    assert notices.keep_posts(sim.state, "a", "a", 0, [post(1)]) == [Notify("a", "a", "decided")]
    assert notices.decided_notices(sim.state) == []
    assert notices.keep_posts(sim.state, "a", "a", 0, [post(1)]) == []
    assert notices.keep_posts(sim.state, "a", "a", 0, [post(2)]) == [Notify("a", "a", "decided")]


def decided(effects: list[object]) -> list[object]:
    return [e for e in effects if isinstance(e, Notify) and e.event == "decided"]


def test_a_decision_closes_a_gate_with_posts_and_tells_its_tool_once() -> None:
    """The pass after a decision asks for one decided notice; later passes ask for none."""
    sim = opened()
    notices.keep_posts(sim.state, "a", "a", 0, [post(1)])
    sim.vote("a", "approve")
    assert decided(sim.effects) == [Notify("a", "a", "decided")]
    assert decided(sim.advance()) == []


def test_a_gate_without_posts_gets_no_decided_notice() -> None:
    """Nothing was posted, so nothing is updated."""
    sim = opened()
    sim.vote("a", "approve")
    assert decided(sim.effects) == []


def test_a_timeout_closes_a_gate_with_posts_and_tells_its_tool() -> None:
    """A gate whose deadline passes is decided by its clock, and told so."""
    sim = opened()
    notices.keep_posts(sim.state, "a", "a", 0, [post(1)])
    assert decided(sim.tick(hours=2)) == [Notify("a", "a", "decided")]
    assert sim.gate("a").outcome == "reject"


def test_a_cancelled_run_closes_a_gate_with_posts_and_tells_its_tool() -> None:
    """A gate closed because the run stopped is told so, though it is no longer open."""
    sim = opened()
    notices.keep_posts(sim.state, "a", "a", 0, [post(1)])
    lifecycle.request_cancel(sim.state, None, T0)
    assert decided(sim.advance()) == [Notify("a", "a", "decided")]
    assert sim.gate("a").outcome == "cancel"


def test_the_notice_carries_the_gates_priority_and_a_preview_of_300_characters() -> None:
    """An urgent gate's notice says urgent; without review text the subject's preview is cut to
    300 characters (the last one an ellipsis)."""
    sim = opened("priority: urgent")
    assert notice(sim).priority == "urgent"
    sim.gate("a").subject = {"text": "y" * 1_000}
    review = notice(sim).review
    assert len(review) == 300 and review.endswith("…")


def test_a_notice_of_any_other_event_says_nothing_of_a_decision_taken_meanwhile() -> None:
    """A gate decided before its opening or reminder went out: those notices carry no outcome,
    deciders, time or posts; only the decided notice does."""
    sim = opened()
    g = sim.gate("a")
    g.posts = [post(1)]
    g.outcome, g.decided_by, g.decided_at = "approve", ["carol"], T0
    for event in ("opened", "reminder", "escalated"):
        n = notice(sim, event)
        assert (n.outcome, n.decided_by, n.decided_at, n.posts) == (None, [], None, [])
