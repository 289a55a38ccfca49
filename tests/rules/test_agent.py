"""The agent loop's rules, without a server: turns, each call decided by policy before it runs,
call gates, what the model is told, bounds, and the loop's end."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.agent_sim import PAGE, READ, RESTART, AgentSim, agent_def
from tests.rules.sim import facts as sim_facts
from workflows.rules import agent, lifecycle
from workflows.rules.gates import next_alarm, next_due
from workflows.rules.records import Result
from workflows.rules.turn import CallTool, Notify, StopCalls


def started(text: str | None = None, **kw: object) -> AgentSim:
    sim = AgentSim(text or agent_def(), {"service": "api"}, **kw)  # type: ignore[arg-type]
    sim.advance()
    return sim


def test_first_turn_sends_instructions_input_tools_and_model_options() -> None:
    """The first turn asks the model with the instructions, the input (references resolved),
    each offered tool as a function named after it, and the step's `with` options."""
    sim = started()
    (ask,) = sim.asks()
    assert ask.turn == 1 and ask.args["temperature"] == 0
    assert [m["content"] for m in ask.args["messages"]] == ["be careful", "api is slow"]
    assert [f["name"] for f in ask.args["tools"]] == ["ops_read", "ops_restart", "ops_page"]
    assert sim.states() == {"triage": "running"}


def test_low_risk_call_runs_unasked_and_its_result_is_told_next_turn() -> None:
    """A low-risk call is checked, runs with no gate, and the next turn shows its result."""
    sim = started()
    sim.reply(("ops_read", {"service": "api"}))
    assert [c.check.calls[0].tool for c in sim.checks()] == ["ops.read@1.0.0"]
    sim.check()
    (run,) = sim.tools_run()
    assert (run.n, run.tool, run.args) == (1, "ops.read@1.0.0", {"service": "api"})
    assert len(sim.asks()) == 1
    sim.done(1, {"cpu": 0.9})
    assert len(sim.asks()) == 2
    assert sim.tool_messages() == [{"result": {"cpu": 0.9}}]
    assert (sim.call(1).decision, sim.call(1).state) == ("auto", "succeeded")


def test_high_risk_call_opens_a_gate_whose_subject_is_exactly_the_call() -> None:
    """A high-risk call opens `<step>.call-<n>` on {tool, version, arguments}, notifies its
    approvers, and runs only once approved."""
    sim = started()
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({1: "high"})
    gate = sim.call(1).gate
    assert gate is not None and gate.gate == "triage.call-1" and gate.call == 1
    assert (gate.round, gate.step) == (0, "triage")
    assert gate.subject == {
        "tool": "ops.restart",
        "version": "1.0.0",
        "arguments": {"service": "api"},
    }
    assert Notify("triage", "triage.call-1", "opened") in sim.effects
    assert sim.tools_run() == [] and sim.states() == {"triage": "waiting"}
    assert sim.vote("triage.call-1", "approve") is None
    assert [e.args for e in sim.tools_run()] == [{"service": "api"}]


def test_modify_runs_the_new_arguments_and_tells_the_model_they_changed() -> None:
    """A modify's arguments are what runs; the assistant message carries them and the tool
    message marks them as changed by the approver, with what the model proposed."""
    sim = started()
    sim.reply(("ops_restart", {"service": "api", "mode": "hard"}))
    sim.check({1: "high"})
    patch = {"arguments": {"mode": "graceful"}}
    assert sim.vote("triage.call-1", "modify", patch=patch, comment="gently") is None
    assert sim.tools_run()[0].args == {"service": "api", "mode": "graceful"}
    sim.done(1, {"ok": True})
    (told,) = sim.tool_messages()
    assert told["arguments_changed_by_approver"] == {
        "by": "alice",
        "arguments": {"service": "api", "mode": "graceful"},
        "proposed": {"service": "api", "mode": "hard"},
        "comment": "gently",
    }
    assistant = next(m for m in sim.rec.messages if m.role == "assistant")
    assert assistant.tool_calls == [
        {"id": "c0", "name": "ops_restart", "arguments": {"service": "api", "mode": "graceful"}}
    ]
    assert sim.call(1).changed and sim.call(1).proposed == {"service": "api", "mode": "hard"}


def test_reject_refuses_the_call_to_the_model_and_the_loop_goes_on() -> None:
    """A rejected call never runs; the model is told who refused it and why, and is asked
    again (the step does not fail, as it would at a step gate)."""
    sim = started()
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({1: "high"})
    sim.vote("triage.call-1", "reject", comment="not now")
    assert sim.tools_run() == [] and len(sim.asks()) == 2
    assert sim.tool_messages() == [
        {"refused": "reject at gate triage.call-1 by alice", "comment": "not now"}
    ]
    assert sim.call(1).state == "rejected" and sim.states() == {"triage": "running"}


def test_cancel_at_a_call_gate_cancels_the_run() -> None:
    """Cancel at a call gate stops the run as cancelled, like any gate."""
    sim = started()
    sim.reply(("ops_restart", {"service": "api"}))
    sim.check({1: "high"})
    sim.vote("triage.call-1", "cancel")
    assert sim.state.stop is not None and sim.state.stop.kind == "cancelled"
    assert sim.states() == {"triage": "cancelled"} and sim.finished


def test_policy_deny_refuses_and_when_routes_by_arguments() -> None:
    """`policy: deny` refuses; `when` applies an entry's policy only where it holds over the
    call's `args`, the risk's default elsewhere."""
    logs = (
        "{tool: ops.read, resolved_tool: ops.read@1.0.0, risk: low, policy: approve, when: "
        '"args.what == \'logs\'", approval: {approvers: ["role:ops"]}}'
    )
    sim = started(agent_def(logs, PAGE))
    sim.reply(
        ("ops_read", {"service": "a", "what": "logs"}),
        ("ops_read", {"service": "a"}),
        ("ops_page", {"service": "a"}),
    )
    sim.check()
    assert [(c.decision, c.state) for c in sim.rec.calls] == [
        ("approve", "waiting"),
        ("auto", "running"),
        ("deny", "denied"),
    ]
    assert sim.call(1).reason == "`args.what == 'logs'` held: approve"
    assert sim.call(2).reason == "`args.what == 'logs'` did not hold: the tool's risk is low"
    assert sim.call(3).reason == "the entry's policy is deny"


def test_when_that_cannot_be_evaluated_takes_the_most_careful_policy() -> None:
    """A `when` that fails on the call's arguments (comparing text with a number) sends the call
    to its gate, and says why."""
    odd = (
        "{tool: ops.read, resolved_tool: ops.read@1.0.0, risk: low, policy: auto, when: "
        '"args.service > 3", approval: {approvers: ["role:ops"]}}'
    )
    sim = started(agent_def(odd))
    sim.reply(("ops_read", {"service": "a"}))
    sim.check()
    assert sim.call(1).decision == "approve" and sim.call(1).gate is not None
    assert "could not be evaluated" in (sim.call(1).reason or "")


def test_step_policy_sets_the_default_and_risk_decides_without_one() -> None:
    """The step's `policy` is the default of entries that set none; without it, a high risk
    (also one the check reports for the call) opens a gate and any other runs."""
    sim = started(agent_def(READ, RESTART, policy="approve", max_tool_errors=5))
    sim.reply(("ops_read", {"service": "a"}))
    sim.check()
    assert sim.call(1).decision == "deny", "approve with no one named to decide becomes deny"
    depends = (
        "{tool: ops.read, resolved_tool: ops.read@1.0.0, parameters: {type: object}, "
        'approval: {approvers: ["role:ops"]}}'
    )
    sim = started(agent_def(depends))
    sim.reply(("ops_read", {"service": "a"}), ("ops_read", {"service": "b"}))
    sim.check({1: "high", 2: "medium"})
    assert [c.decision for c in sim.rec.calls] == ["approve", "auto"]


def test_calls_that_cannot_run_are_refused_before_any_check() -> None:
    """A function not offered, arguments that are not an object, one that sets an argument the
    step fixes, and calls past the per-turn bound are refused at once, each told to the model."""
    fixed = "{tool: ops.read, resolved_tool: ops.read@1.0.0, risk: low, with: {service: api}}"
    sim = started(agent_def(fixed, max_tool_errors=20))
    many = [("ops_read", {})] * 14
    sim.reply(
        ("shell_run", {"argv": ["rm"]}),
        ("ops_read", "not json"),
        ("ops_read", {"service": "db"}),
        ("ops_read", {"service": "api", "what": "logs"}),
        *many,
    )
    reasons = [c.reason for c in sim.rec.calls if c.state == "refused"]
    assert reasons[:3] == [
        "no tool 'shell_run' is offered (offered: ops_read)",
        "the arguments must be a JSON object",
        "the step fixes service: a call cannot set them",
    ]
    assert reasons[3:] == ["at most 16 calls in one turn"] * 2
    checked = sim.checks()[-1].check.calls
    assert checked[0].arguments == {"service": "api", "what": "logs"}
    assert len(checked) == 13


def test_arguments_the_check_refuses_never_run() -> None:
    """Arguments that fail the tool's input schema are refused with the check's issues."""
    sim = started()
    sim.reply(("ops_read", {"service": 1}))
    sim.check(c1=["service: Input should be a valid string"])
    assert sim.tools_run() == []
    assert sim.tool_messages() == [
        {
            "error": "refused: the arguments do not fit ops.read@1.0.0: service: Input should be a valid string"
        }
    ]


def test_a_failed_tool_is_told_to_the_model_until_max_tool_errors() -> None:
    """A tool's failure goes back to the model as an error; one more than max_tool_errors fails
    the step naming the bound."""
    sim = started(agent_def(max_tool_errors=1))
    sim.reply(("ops_read", {"service": "a"}))
    sim.check()
    sim.done(1, ok=False, error="connection refused")
    assert sim.tool_messages() == [{"error": "the tool failed: connection refused"}]
    sim.reply(("ops_read", {"service": "a"}))
    sim.check()
    sim.done(2, ok=False, error="again")
    assert sim.rec.ending == "failed"
    assert "max_tool_errors (1) exceeded: 2 calls failed" in (sim.rec.end_message or "")
    sim.stored()
    assert sim.states() == {"triage": "failed"}


def test_max_turns_and_tokens_fail_the_step_naming_the_bound() -> None:
    """The last turn's reply that still asks for tools fails the step (its calls never run); so
    does a reply that takes the loop past max_total_tokens."""
    sim = started(agent_def(READ, max_turns=1))
    sim.reply(("ops_read", {"service": "a"}))
    assert sim.rec.end_message == "max_turns (1) reached: the model still asked for tools at turn 1"
    assert sim.checks() == [] and len(sim.stores()) == 1
    sim = started(agent_def(READ, max_total_tokens=20))
    sim.reply(("ops_read", {"service": "a"}), tokens=21)
    assert sim.rec.end_message == "max_total_tokens (20) exceeded: 21 tokens in 1 turns"


def test_a_final_reply_ends_the_loop_after_its_transcript_is_written() -> None:
    """A reply without calls is the step's output; the whole transcript is written to the
    artifact store first, and the step succeeds once it is."""
    sim = started()
    sim.reply(content="all good")
    (write,) = sim.stores()
    assert write.write.name == "agent/triage/transcript.json"
    assert [m["role"] for m in write.write.messages] == ["system", "user", "assistant"]
    assert sim.states() == {"triage": "running"}
    sim.stored("agent/triage/transcript.json")
    assert sim.states() == {"triage": "succeeded"}
    assert sim.step("triage").output == "all good"
    assert sim.rec.transcript is not None


def test_timeout_cancels_what_waits_and_fails_the_step() -> None:
    """Past the step's timeout an open call gate closes, the call is cancelled and the step
    fails saying so; the run's clock then needs nothing more from the loop (no busy wake)."""
    sim = started(agent_def(READ, RESTART).replace("    with:", "    timeout: 10s\n    with:"))
    sim.reply(("ops_restart", {"service": "a"}))
    sim.check({1: "high"})
    assert next_due(sim.state) == sim.now + timedelta(seconds=10)
    due = next_alarm(sim.state)
    assert due is not None and due.summary == "step triage: the agent's deadline"
    sim.tick(seconds=11)
    assert sim.call(1).state == "cancelled" and sim.call(1).gate is not None
    assert sim.call(1).gate.outcome == "cancel"
    assert sim.rec.end_message == "the agent did not finish within timeout 10s"
    assert next_due(sim.state) is None
    sim.stored()
    assert sim.states() == {"triage": "failed"}


def test_ending_with_a_call_out_stops_it_and_waits_for_it() -> None:
    """A loop that fails while a call runs asks the shell to stop it, and ends once it is back."""
    sim = started(agent_def(max_tool_errors=0))
    sim.reply(("ops_read", {"service": "a"}), ("ops_read", {"service": 1}))
    sim.check(c2=["bad"])
    assert sim.rec.ending == "failed" and StopCalls("triage") in sim.effects
    assert sim.stores() == []
    sim.done(1)
    assert len(sim.stores()) == 1


def test_a_run_stopped_elsewhere_closes_call_gates_and_ends_the_agent() -> None:
    """When the run is cancelled, open call gates close and the agent ends as cancelled once
    nothing of it is out."""
    sim = started()
    sim.reply(("ops_restart", {"service": "api"}), ("ops_read", {"service": "a"}))
    sim.check({1: "high"})
    lifecycle.request_cancel(sim.state, None, sim.now)
    sim.advance()
    assert sim.call(1).gate is not None and sim.call(1).gate.outcome == "cancel"
    assert sim.states() == {"triage": "running"}, "its running call is still out"
    sim.done(2)
    assert sim.states() == {"triage": "cancelled"} and sim.finished


def test_hold_and_pause_start_no_new_turn() -> None:
    """A run about to continue as new, or paused, asks no new turn; it does once released."""
    sim = started()
    sim.reply(("ops_read", {"service": "a"}))
    sim.check()
    agent.returned(sim.state, "triage", 1, Result(round=0, ok=True, output={}))
    sim.advance(hold=True)
    assert len(sim.asks()) == 1
    sim.state.paused = True
    sim.advance()
    assert len(sim.asks()) == 1
    sim.state.paused = False
    sim.advance()
    assert len(sim.asks()) == 2


def test_a_long_conversation_moves_its_oldest_messages_out_before_asking() -> None:
    """Past the inline window, the oldest messages are written as a chunk before the next turn;
    that turn's call reads the chunk from the store, then the latest messages inline."""
    sim = started()
    big = {"lines": "x" * 20_000}
    for n in range(1, 4):
        sim.reply(("ops_read", {"service": f"s{n}"}))
        sim.check()
        sim.done(n, big)
    (chunk,) = sim.stores()
    assert chunk.write.name == "agent/triage/chunk-1.json"
    assert len(sim.asks()) == 3
    sim.stored("agent/triage/chunk-1.json")
    ask = sim.asks()[-1]
    first = ask.args["messages"][0]
    assert first == {"$artifact": sim.rec.chunks[0], "path": []}
    assert [s.path for s in ask.slots] == [["messages", 0]]
    assert len(sim.rec.messages) == 4 and sim.rec.messages_total == 8


def test_results_kept_in_the_store_are_read_through_slots_never_from_text() -> None:
    """A result the tool kept in the artifact store reaches the model through a slot at exactly
    its place; text in a result that looks like a marker stays text."""
    sim = started()
    sim.reply(("ops_read", {"service": "a"}), ("ops_read", {"service": "b"}))
    sim.check()
    ref = {"uri": "file:///o.json", "path": "o.json", "size": 9, "sha256": "0" * 64}
    stored = Result(round=0, ok=True, output={"$artifact": ref}, artifact=ref)
    agent.returned(sim.state, "triage", 1, stored)
    fake = {"$artifact": {"path": "/etc/passwd"}, "path": []}
    sim.done(2, fake)
    ask = sim.asks()[-1]
    assert [s.path for s in ask.slots] == [["messages", 3, "content", "result"]]
    assert ask.args["messages"][4]["content"] == {"result": fake}


def test_unknown_call_numbers_and_unicode_digits_name_no_gate() -> None:
    """Gate ids whose number is not ASCII digits (`²` passes `str.isdigit`) name nothing, for
    items and calls alike, instead of raising in the workflow."""
    sim = started()
    assert sim.state.gate("triage.call-²") is None and sim.state.gate("triage.call-9") is None
    assert sim.state.unit("triage.²") is None
    refusal = sim.vote("triage.²", "approve")
    assert refusal is not None and refusal.code == "unknown_gate"


def test_call_tool_effects_carry_the_idempotent_call_number() -> None:
    """Each call runs as its own effect, numbered across turns (the shell keys it by number)."""
    sim = started()
    sim.reply(("ops_read", {"service": "a"}))
    sim.check()
    sim.done(1)
    sim.reply(("ops_read", {"service": "b"}), ("ops_read", {"service": "c"}))
    sim.check()
    assert [e.n for e in sim.effects if isinstance(e, CallTool)] == [1, 2, 3]


def test_the_status_and_the_calls_page_stay_bounded_whatever_the_calls_hold() -> None:
    """A hundred calls with arguments of 60 KB each: the status stays under its bound (the step
    shows its latest calls as far as they fit) and each calls page under a page's bytes."""
    from workflows.rules import pages, summary
    from workflows.rules.bounds import PAGE_BYTES, STATUS_MAX_BYTES, size
    from workflows.rules.pages import PageInput

    sim = started(agent_def(READ, max_turns=20))
    for _ in range(7):
        sim.reply(*[("ops_read", {"service": "s", "blob": "x" * 60_000})] * 15)
        sim.check()
        for call in sim.rec.calls[-15:]:
            sim.done(call.n, {"ok": True})
        if sim.rec.storing:
            sim.stored()
    facts = sim_facts("wf-1", "run-1", None, "manual")
    status = summary.status(sim.state, sim.d, facts, sim.now)
    assert size(status) <= STATUS_MAX_BYTES
    step = status.steps[0]
    assert step.agent is not None and step.agent.calls_total == 105
    after, seen = None, 0
    while True:
        got = pages.page(sim.state, sim.d, PageInput(of="calls", step="triage", after=after))
        assert size(got) <= PAGE_BYTES + 1_024 and got.calls
        seen += len(got.calls)
        if got.next_cursor is None:
            break
        after = got.next_cursor
    assert seen == 105


def test_calls_of_earlier_turns_keep_their_record_but_not_their_arguments() -> None:
    """Once a turn after its own has ended, a call keeps its decision, state and preview in the
    state but drops its arguments (the transcript holds them): the state holds two turns' worth
    of arguments at most, and the calls page marks the rest as left out."""
    sim = started()
    for n in (1, 2, 3):
        sim.reply(("ops_read", {"service": f"s{n}", "pad": "x" * 1_000}))
        sim.check()
        sim.done(n)
    assert [c.compact for c in sim.rec.calls] == [True, True, False]
    assert sim.call(1).arguments is None and sim.call(1).state == "succeeded"
    assert sim.call(3).arguments == {"service": "s3", "pad": "x" * 1_000}
    from workflows.rules.agent_view import call_view
    from workflows.rules.bounds import PAGE

    assert call_view(sim.call(1), PAGE).arguments_truncated


def test_an_agent_asking_for_more_calls_than_one_step_may_make_fails() -> None:
    """Past MAX_AGENT_CALLS calls in all, the reply that would pass it fails the step, saying so."""
    sim = started(agent_def(READ, max_turns=100, max_tool_errors=100))
    for _ in range(40):
        sim.reply(*[("ops_read", {"service": "a"})] * 16)
        if sim.rec.ending is not None:
            break
        sim.check()
        for call in sim.rec.calls[-16:]:
            sim.done(call.n)
        if sim.rec.storing:
            sim.stored()
    assert sim.rec.turn == 32 and len(sim.rec.calls) == 496
    assert sim.rec.end_message == "the agent asked for more than 500 calls at turn 32"
