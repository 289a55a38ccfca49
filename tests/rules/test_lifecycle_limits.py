"""A run's end at its limits: an output over MAX_RUN_OUTPUT_BYTES, a state too large to carry into
a new run, and output references to steps that produced nothing."""

from __future__ import annotations

from datetime import timedelta

from tests.rules.sim import T0, Sim
from workflows.language.limits import MAX_CARRY_BYTES, MAX_RUN_OUTPUT_BYTES
from workflows.models import AuditEntry
from workflows.names import RunState
from workflows.rules import lifecycle
from workflows.rules.state import Stop

ECHO = """
name: echo
steps:
  - {id: a, tool: t.x}
output: {text: "${input.text}"}
"""
# `{"text":"` and `"}` around the text in the output's canonical JSON.
WRAP = len('{"text":""}')

BRANCH = """
name: branch
steps:
  - {id: a, tool: t.x}
  - {id: skip, tool: t.x, if: "false"}
output: {a: "${steps.a.output}", skip: "${steps.skip.output}", status: "${steps.skip.status}"}
"""


def _finished(text: str) -> Sim:
    sim = Sim(ECHO, {"text": text})
    sim.advance()
    sim.succeed("a")
    return sim


def test_an_output_of_exactly_the_bound_is_kept() -> None:
    """An output whose canonical JSON takes MAX_RUN_OUTPUT_BYTES is the run's output."""
    sim = _finished("x" * (MAX_RUN_OUTPUT_BYTES - WRAP))
    lifecycle.resolve_output(sim.state, sim.d, sim.ctx)
    assert sim.state.stop is None
    assert sim.state.output == {"text": "x" * (MAX_RUN_OUTPUT_BYTES - WRAP)}


def test_an_output_over_the_bound_fails_the_run_saying_how_large_it_is() -> None:
    """One byte over the bound, the run fails naming the size and the bound, and keeps no output."""
    sim = _finished("x" * (MAX_RUN_OUTPUT_BYTES - WRAP + 1))
    lifecycle.resolve_output(sim.state, sim.d, sim.ctx)
    assert sim.state.output is None
    assert sim.state.stop == Stop(
        kind="failed",
        message=f"the run's output takes {MAX_RUN_OUTPUT_BYTES + 1} bytes, more than "
        f"{MAX_RUN_OUTPUT_BYTES}: have `output` name less, or keep large data in a step's artifact",
    )
    assert lifecycle.close(sim.state, T0) == RunState.FAILED
    assert sim.state.error is not None and sim.state.error.startswith("the run's output takes")


def test_an_output_naming_a_skipped_step_reads_null_for_it() -> None:
    """A skipped branch is normal: its output reads as null in the run's output, its status as
    skipped, and the run does not fail."""
    sim = Sim(BRANCH)
    sim.advance()
    sim.succeed("a", {"v": 1})
    assert sim.finished
    lifecycle.resolve_output(sim.state, sim.d, sim.ctx)
    assert sim.state.stop is None
    assert sim.state.output == {"a": {"v": 1}, "skip": None, "status": "skipped"}
    assert lifecycle.close(sim.state, T0) == RunState.COMPLETED


def test_a_state_too_large_to_carry_fails_the_run_and_says_so_in_the_audit() -> None:
    """The run stops failed with a message naming the size and the bound, and one lifecycle
    `fail` entry at that time carries the same message."""
    sim = Sim(ECHO, {"text": "t"})
    later = T0 + timedelta(minutes=5)
    lifecycle.too_large_to_carry(sim.state, MAX_CARRY_BYTES + 7, later)
    message = (
        f"the run's state and snapshots take {MAX_CARRY_BYTES + 7} bytes, more than the "
        f"{MAX_CARRY_BYTES} it can carry into a new run: split the pipeline into child pipelines"
    )
    assert sim.state.stop == Stop(kind="failed", message=message)
    assert sim.state.audit == [
        AuditEntry(seq=1, at=later, kind="lifecycle", action="fail", reason=message)
    ]
    assert lifecycle.close(sim.state, later) == RunState.FAILED
    assert sim.state.error == message
