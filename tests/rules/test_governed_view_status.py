"""What the outside sees of a governed run (workflows/rules/governed_view.py): every part of its
status, its gates page and the Web UI's details, each within its bound."""

from __future__ import annotations

from datetime import timedelta

from activities.models import MemoryHit, MemoryPattern
from tests.rules.sim import T0
from tests.rules.test_governed import POLICY, decision, inp, planned, reviewing
from workflows.language.policy import Policy, TierGate
from workflows.rules import governed, governed_view
from workflows.rules.bounds import (
    GOVERNED_ASSESSMENT_BYTES,
    GOVERNED_CONTEXT_BYTES,
    GOVERNED_LIST,
    GOVERNED_PLAN_BYTES,
    GOVERNED_REQUEST_CHARS,
    STATUS_ERROR_CHARS,
    STATUS_OUTPUT_BYTES,
    SUMMARY,
)
from workflows.rules.governed import GovernedInput, GovernedState
from workflows.rules.pages import PageInput
from workflows.rules.risk import Reason


def hit(n: int) -> MemoryHit:
    return MemoryHit(
        id=n,
        score=1.0,
        pattern=MemoryPattern(
            workflow_id=f"g-{n}", request="r", outcome="completed", created_at=T0
        ),
    )


def test_status_carries_every_part_of_the_cycle() -> None:
    """The status shows the run's facts and every part of its cycle as the state holds them."""
    st = reviewing({"read": "medium"})
    st.phase, st.revision, st.plan_source, st.plan_attempts = "execute", 7, "llm", 2
    st.plan_errors, st.decision = ["first try: bad"], "approved"
    st.child_workflow_id, st.child_state = "g-1--execute", "running"
    st.similar = [hit(1), hit(2)]
    st.durations_ms = {"plan": 1200, "review": 30}
    st.output, st.error = {"api_key": "k", "ok": True}, "it broke"
    status = governed_view.status(st, inp(), "g-1", "r-1", paused=False)
    assert (status.version, status.approval_mode, status.started_at, status.revision) == (
        1,
        "manual",
        T0,
        7,
    )
    assert status.steps == [] and status.steps_total == 0
    assert (status.progress.done, status.progress.percent) == (2, 50.0)
    assert status.output == {"api_key": "***", "ok": True} and status.output_truncated is False
    assert status.error == "it broke"
    assert status.requester is not None and status.requester.principal == "req"
    view = status.governed
    assert view is not None
    assert (view.phase, view.request, view.policy) == ("execute", "deploy", "default")
    assert view.plan == st.plan and (view.plan_truncated, view.context_truncated) == (False, False)
    assert (view.plan_source, view.plan_attempts, view.plan_errors) == (
        "llm",
        2,
        ["first try: bad"],
    )
    assert (view.decision, view.child_workflow_id, view.child_state) == (
        "approved",
        "g-1--execute",
        "running",
    )
    assert view.similar == ["g-1", "g-2"] and view.durations_ms == {"plan": 1200, "review": 30}


def test_status_of_a_fresh_run_has_nothing_to_show_yet() -> None:
    """Before a plan: no assessment, no plan, no gate, no requester when the run has none."""
    st = GovernedState(started_at=T0, phase_started=T0)
    status = governed_view.status(st, inp(requester=None), "g", "r", paused=False)
    assert status.state == "running" and status.requester is None
    assert (status.open_gates, status.open_gates_total, status.output, status.error) == (
        [],
        0,
        None,
        None,
    )
    assert status.progress.percent == 0.0
    assert status.governed is not None
    assert (status.governed.plan, status.governed.assessment) == (None, None)


def test_status_lists_the_childs_open_gates_after_the_review() -> None:
    """The child run's open gates show after the review gate, each named by the child run,
    and the total counts them all."""
    st = reviewing({"read": "high"})
    st.child_workflow_id = "g-1--execute"
    st.child_gates = governed.summary(reviewing()) + governed.summary(reviewing({"read": "high"}))
    status = governed_view.status(st, inp(), "g-1", "r-1", paused=False)
    assert status.open_gates_total == 3
    assert [(g.gate, g.workflow_id) for g in status.open_gates] == [
        ("review", None),
        ("review", "g-1--execute"),
        ("review", "g-1--execute"),
    ]
    assert [g.quorum for g in status.open_gates] == [2, 1, 2]


def test_status_bounds_each_part_of_the_cycle() -> None:
    """A request, an error and each plan error are cut to their bounds; an output, a context,
    a plan or an assessment too large is left out and says so; the lists keep their first ones."""
    big = "x" * (GOVERNED_PLAN_BYTES + 10)
    st = reviewing({"read": "medium"})
    st.plan = {"name": "p", "big": big}
    st.output = {"blob": "y" * (STATUS_OUTPUT_BYTES + 10)}
    st.error = "e" * (STATUS_ERROR_CHARS + 5)
    st.plan_errors = [f"{n}" + "z" * SUMMARY.text for n in range(GOVERNED_LIST + 3)]
    st.similar = [hit(n) for n in range(GOVERNED_LIST + 3)]
    assert st.assessment is not None
    many = [Reason(rule="llm", detail="d" * 900) for _ in range(GOVERNED_ASSESSMENT_BYTES // 900)]
    st.assessment = st.assessment.model_copy(update={"reasons": many})
    request = "r" * GOVERNED_REQUEST_CHARS + "tail"
    i = GovernedInput(
        request=request,
        context={"blob": "c" * GOVERNED_CONTEXT_BYTES},
        policy=POLICY,
    )
    status = governed_view.status(st, i, "g", "r", paused=False)
    assert (status.output, status.output_truncated) == (None, True)
    assert status.error == "e" * (STATUS_ERROR_CHARS - 1) + "…"
    view = status.governed
    assert view is not None
    assert view.request == "r" * (GOVERNED_REQUEST_CHARS - 1) + "…"
    assert (view.context, view.context_truncated) == (None, True)
    assert (view.plan, view.plan_truncated) == (None, True)
    assert view.assessment is None
    assert len(view.plan_errors) == GOVERNED_LIST
    assert view.plan_errors[0] == "0" + "z" * (SUMMARY.text - 2) + "…"
    assert view.similar == [f"g-{n}" for n in range(GOVERNED_LIST)]


def test_status_keeps_parts_just_within_their_bounds() -> None:
    """A request of exactly its bound and a small context and plan are shown whole."""
    st = reviewing({"read": "medium"})
    i = GovernedInput(request="q" * GOVERNED_REQUEST_CHARS, context={"a": 1}, policy=POLICY)
    view = governed_view.status(st, i, "g", "r", paused=False).governed
    assert view is not None
    assert view.request == "q" * GOVERNED_REQUEST_CHARS
    assert (view.context, view.context_truncated, view.plan_truncated) == ({"a": 1}, False, False)
    assert view.assessment is not None and view.assessment["tier"] == 2


def test_status_names_the_runs_policy() -> None:
    """The status names the policy the run is governed by."""
    named = Policy(name="strict", tier2=POLICY.tier2, tier3=POLICY.tier3)
    view = governed_view.status(reviewing(), inp(named), "g", "r", paused=False).governed
    assert view is not None and view.policy == "strict"


def test_awaiting_lists_every_approver_of_the_open_review_sorted() -> None:
    """Every approver of the tier's gate may decide, listed in order; nobody before a review."""
    policy = POLICY.model_copy(
        update={"tier2": TierGate(approvers=["role:peer", "user:ann", "role:lead"])}
    )
    st = reviewing({"read": "medium"}, inp(policy))
    assert governed_view.awaiting(st) == ["role:lead", "role:peer", "user:ann"]
    assert governed_view.awaiting(planned({"read": "medium"})) == []


def test_details_say_paused_and_name_every_approver() -> None:
    """A paused run says so over its waiting review, which names each of its approvers."""
    policy = POLICY.model_copy(update={"tier2": TierGate(approvers=["role:peer", "user:ann"])})
    st = reviewing({"read": "medium"}, inp(policy))
    st.phase = "review"
    assert st.assessment is not None
    assert governed_view.details(st, paused=True).splitlines() == [
        f"**paused** · governed, phase **review**, tier 2 (score {st.assessment.score})",
        "- review waits for role:peer, user:ann",
    ]


def test_details_show_where_the_plan_runs_while_the_review_waits() -> None:
    """With a child run and an open review both, the details name the child first."""
    st = reviewing()
    st.child_workflow_id, st.child_state = "g--execute", "waiting"
    assert governed_view.details(st, paused=False).splitlines()[1:] == [
        "- plan runs as `g--execute`: waiting",
        "- review waits for role:peer",
    ]


def test_the_gates_page_filters_by_the_reviews_state() -> None:
    """Asked for open gates, the open review is listed; once decided, only its outcome's state
    lists it, with its total, and no next cursor."""
    st = reviewing()
    opened = governed_view.page(st, PageInput(of="gates", state="open"))
    assert [g.gate for g in opened.gates] == ["review"] and opened.total == 1
    governed.apply(st, inp(), decision("approve"), T0 + timedelta(minutes=1), "update")
    assert governed_view.page(st, PageInput(of="gates", state="open")).total == 0
    approved = governed_view.page(st, PageInput(of="gates", state="approved"))
    assert [(g.gate, g.state) for g in approved.gates] == [("review", "approved")]
    assert (approved.total, approved.next_cursor, approved.problem) == (1, None, None)
    shown = governed_view.page(st, PageInput(of="gates")).gates[0]
    assert shown.subject == governed.subject(st) and shown.quorum == 1


def test_the_gates_page_refuses_a_cursor_before_any_gate() -> None:
    """Before the review opens, any cursor names no gate of the run (bad_cursor, named)."""
    st = planned({"read": "medium"})
    found = governed_view.page(st, PageInput(of="gates", after="review"))
    assert (found.problem, found.message) == (
        "bad_cursor",
        "cursor 'review' names no gate of this run",
    )
    assert found.of == "gates"


def test_the_gates_page_is_empty_without_the_tiers_rules() -> None:
    """A gate record without its tier's rules is not listed (nothing to render it by)."""
    st = reviewing()
    st.tier_gate = None
    found = governed_view.page(st, PageInput(of="gates"))
    assert (found.gates, found.total, found.problem) == ([], 0, None)


def test_the_page_of_other_lists_points_to_the_child_run() -> None:
    """Items, iterations or calls of a governed run are unknown_step; once its plan runs, the
    message names the child run that has them."""
    st = reviewing()
    found = governed_view.page(st, PageInput(of="calls", step="a"))
    assert (found.of, found.problem, found.message) == (
        "calls",
        "unknown_step",
        "a governed run has no steps",
    )
    st.child_workflow_id = "g--execute"
    found = governed_view.page(st, PageInput(of="items", step="a"))
    assert found.message == "a governed run has no steps; its plan runs as g--execute"


def test_status_lists_child_gates_whole_while_they_fit_and_counts_the_rest() -> None:
    """Child gates too many for the status's gate budget are listed whole (subject and review)
    as far as they fit, never cut down to fit more; the total counts every one."""
    st = reviewing()
    (line,) = governed.summary(reviewing())
    big = line.model_copy(update={"subject": {"blob": "s" * 6_000}, "review": "r" * 1_000})
    st.child_workflow_id, st.child_gates = "g--execute", [big] * 20
    status = governed_view.status(st, inp(), "g", "r", paused=False)
    assert status.open_gates_total == 21
    children = status.open_gates[1:]
    assert 1 <= len(children) < 20
    assert all(g.subject == big.subject and g.review == big.review for g in children)
