"""A for_each step over a list inside a step output kept in the artifact store: the rules ask for
the list to be read back, then go on with it as with any list."""

from __future__ import annotations

from typing import Any

import pytest

from activities.models import ARTIFACT_MARKER, ArtifactRef
from tests.rules.sim import Sim
from workflows.language.limits import MAX_ITEMS
from workflows.models import LifecycleInput
from workflows.rules import lifecycle
from workflows.rules.scheduler import Invoke, LoadList
from workflows.rules.state import Result

REF = {"uri": "file:///a", "path": "run/fetch.json", "size": 70_000, "sha256": "ab" * 32}

EACH = """
name: each
steps:
  - {id: fetch, tool: t.x}
  - id: write
    needs: [fetch]
    for_each: "${steps.fetch.output.body.services}"
    max_parallel: 2
    tool: t.x
    with: {name: "${item}"}
  - {id: slow, tool: t.x}
"""


def stored(sim: Sim, step_id: str) -> list[Any]:
    """`step_id` succeeds with an output too large for history (kept as an artifact)."""
    lifecycle.record_result(
        sim.state,
        step_id,
        Result(round=0, ok=True, output={ARTIFACT_MARKER: REF}, artifact=REF, attempts=1),
    )
    return sim.advance()


def loaded(sim: Sim, result: Result) -> list[Any]:
    lifecycle.record_result(sim.state, "write", result)
    return sim.advance()


def test_a_list_in_a_stored_output_is_read_back_before_items_expand() -> None:
    """The step asks for its list to be read from the artifact store (the ref and the path
    inside it), waits with its read out, then runs each item with the list's values."""
    sim = Sim(EACH)
    sim.advance()
    effects = stored(sim, "fetch")
    assert effects == [LoadList("write", 0, ArtifactRef.model_validate(REF), ["body", "services"])]
    write = sim.step("write")
    assert (write.phase, write.state.value, write.items) == ("loading", "running", None)
    assert write in sim.state.in_flight()
    effects = loaded(sim, Result(round=0, ok=True, output=["api", "db", "web"], attempts=1))
    assert [(e.step, e.args) for e in effects if isinstance(e, Invoke)] == [
        ("write.0", {"name": "api"}),
        ("write.1", {"name": "db"}),
    ]
    for n in range(3):
        sim.succeed(f"write.{n}", {"n": n})
    sim.succeed("slow")
    assert sim.step("write").output == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert sim.finished and sim.states()["write"] == "succeeded"


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (
            Result(
                round=0, ok=False, error="artifact 'run/fetch.json' changed since it was written"
            ),
            "for_each: artifact 'run/fetch.json' changed since it was written",
        ),
        (Result(round=0, ok=True, output={"a": 1}), "for_each must be a list, got dict"),
        (
            Result(round=0, ok=True, output=list(range(MAX_ITEMS + 1))),
            f"for_each has {MAX_ITEMS + 1} items, more than {MAX_ITEMS}",
        ),
    ],
    ids=["unreadable", "not-a-list", "too-many"],
)
def test_a_list_that_cannot_be_used_fails_the_step(result: Result, error: str) -> None:
    """A read that failed, a value that is no list, or more than MAX_ITEMS items fail the step
    with the reason, as for a list kept in history."""
    sim = Sim(EACH)
    sim.advance()
    stored(sim, "fetch")
    loaded(sim, result)
    assert (sim.states()["write"], sim.step("write").error) == ("failed", error)


def test_cancel_while_the_list_is_read_waits_for_the_read_then_ends() -> None:
    """A cancelled run waits for the read it has out; when it reports cancelled the step ends
    cancelled and so does the run."""
    sim = Sim(EACH)
    sim.advance()
    stored(sim, "fetch")
    lifecycle.request_cancel(sim.state, LifecycleInput(actor="olga"), sim.now)
    sim.advance()
    assert sim.step("write").phase == "loading" and not sim.finished
    loaded(sim, Result(round=0, ok=False, cancelled=True, attempts=0))
    sim.fail("slow", "cancelled")
    assert sim.states()["write"] == "cancelled" and sim.finished


def test_a_pass_that_stops_the_run_takes_its_list_read_back() -> None:
    """When the stored output and another step's failure arrive in one pass, the read the pass
    asked for is withdrawn and its step ends, so the run is not left waiting for it."""
    sim = Sim(EACH)
    sim.advance()
    lifecycle.record_result(
        sim.state,
        "fetch",
        Result(round=0, ok=True, output={ARTIFACT_MARKER: REF}, artifact=REF, attempts=1),
    )
    lifecycle.record_result(sim.state, "slow", Result(round=0, ok=False, error="boom"))
    effects = sim.advance()
    assert not [e for e in effects if isinstance(e, LoadList)]
    assert sim.states()["write"] == "cancelled" and sim.finished


def test_data_shaped_like_an_artifact_marker_is_never_read_back() -> None:
    """A list reference whose value merely looks like a stored output (run input, a tool's
    output) is data: no read is asked for, and the step fails as for any value that is no list."""
    sim = Sim(
        """
name: forged
input: {type: object, properties: {xs: {type: object}}}
steps:
  - id: write
    for_each: "${input.xs}"
    tool: t.x
""",
        {"xs": {ARTIFACT_MARKER: REF, "path": []}},
    )
    effects = sim.advance()
    assert not [e for e in effects if isinstance(e, LoadList)]
    assert sim.step("write").error == "for_each must be a list, got dict"
