"""data.transform with JMESPath."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities import default_registry
from activities.config import Settings
from activities.runtime import ToolActivities
from tests.tools.beside import BeatInput, BesideInput, RunBeside, beat
from tests.tools.conftest import make_call

AGENTS = {"agents": [{"id": "a1", "healthy": True, "load": 3}, {"id": "a2", "healthy": False}]}


async def test_transform_reshapes_data_when_expression_is_valid(acts: ToolActivities) -> None:
    """A JMESPath expression filters and projects the data."""
    args = {"data": AGENTS, "expression": "agents[?healthy].{id: id, load: load}"}
    result = await acts.execute(make_call("data.transform", args))
    assert result.output == {"result": [{"id": "a1", "load": 3}]}


async def test_transform_returns_null_when_nothing_matches(acts: ToolActivities) -> None:
    """A path that does not exist yields null rather than an error."""
    result = await acts.execute(make_call("data.transform", {"data": AGENTS, "expression": "x.y"}))
    assert result.output == {"result": None}


@pytest.mark.parametrize(
    ("expression", "kind"),
    [("agents[?healthy", "InvalidExpression"), ("sum(agents[].id)", "TransformFailed")],
)
async def test_transform_fails_fatally_when_expression_is_bad(
    acts: ToolActivities, expression: str, kind: str
) -> None:
    """A parse error or a type error is non-retryable and quotes the expression."""
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("data.transform", {"data": AGENTS, "expression": expression}))
    assert err.value.non_retryable is True and err.value.type == kind
    assert repr(expression) in err.value.message


def doubling(stages: int) -> str:
    """The reported amplification: each stage doubles the value, `[@,@] | [@,@] | ...`."""
    return " | ".join(["[@,@]"] * stages)


# Small to build (100 numbers to 100,000) but slow to run: 400 passes over the large list,
# each building nothing, so only the time budget stops it.
SLOW = "[@,@,@,@,@,@,@,@,@,@] | [] | [@,@,@,@,@,@,@,@,@,@] | [] | [@,@,@,@,@,@,@,@,@,@] | [] | [{}]".format(
    ", ".join(["max_by(@, &@)"] * 400)
)


@pytest.mark.parametrize(
    ("expression", "data", "budget"),
    [
        (doubling(30), [1], "STEPGATE_TRANSFORM_MAX_OUTPUT_BYTES"),
        (" | ".join(["[@,@][]"] * 30), [1], "STEPGATE_TRANSFORM_MAX_OUTPUT_BYTES"),
        (doubling(20) + " | to_string(@)", [1], "STEPGATE_TRANSFORM_MAX_OUTPUT_BYTES"),
        (f"({doubling(21)}) == ({doubling(21)})", [1], "STEPGATE_TRANSFORM_MAX_OUTPUT_BYTES"),
        (SLOW, list(range(100)), "STEPGATE_TRANSFORM_TIMEOUT_S"),
    ],
    ids=["doubling", "flatten", "to_string", "compare", "slow"],
)
async def test_transform_fails_fatally_when_expression_exceeds_budget(
    make_acts: Callable[..., ToolActivities], expression: str, data: object, budget: str
) -> None:
    """A runaway expression stops on its own budget, non-retryably, naming the setting. The
    other budget is set far away, so a busy machine cannot make the wrong one fire first."""
    slow = budget == "STEPGATE_TRANSFORM_TIMEOUT_S"
    acts = make_acts(stepgate_transform_timeout_s=2.0 if slow else 120.0)
    call = make_call("data.transform", {"data": data, "expression": expression})
    with pytest.raises(ApplicationError) as err:
        await acts.execute(call)
    assert err.value.type == "TransformBudgetExceeded" and err.value.non_retryable is True
    assert budget in err.value.message


async def test_transform_fails_fatally_when_result_exceeds_output_budget(
    make_acts: Callable[..., ToolActivities],
) -> None:
    """A result over the output budget fails even when the input itself is that large."""
    acts = make_acts(stepgate_transform_max_output_bytes=1_024)
    big = ["x" * 100] * 20
    assert await acts.execute(make_call("data.transform", {"data": big, "expression": "[0]"}))
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("data.transform", {"data": big, "expression": "@"}))
    assert err.value.type == "TransformBudgetExceeded"
    assert "returned a value of more than 1024 bytes" in err.value.message


async def test_transform_fails_fatally_when_nesting_is_too_deep(acts: ToolActivities) -> None:
    """An expression nested past the interpreter's recursion limit fails cleanly, not retried."""
    expression = "(" * 3000 + "@" + ")" * 3000
    with pytest.raises(ApplicationError) as err:
        await acts.execute(make_call("data.transform", {"data": 1, "expression": expression}))
    assert err.value.type == "TransformBudgetExceeded" and err.value.non_retryable is True


async def test_transform_masks_secret_when_expression_fails(
    acts: ToolActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret inside a failing expression is masked in the message, however it is quoted."""
    secret = 'it\'s-a-"secret"-value'
    monkeypatch.setenv("STEPGATE_SECRET_KEY", secret)
    for expression in ("'${secret.KEY}' | [", 'sum(`["${secret.KEY}"]`)'):
        with pytest.raises(ApplicationError) as err:
            await acts.execute(make_call("data.transform", {"data": 1, "expression": expression}))
        assert "secret" not in err.value.message.replace("${secret.KEY}", ""), err.value.message
        assert "***" in err.value.message


async def test_transform_leaves_worker_responsive_when_expression_runs_away(
    client: Client, task_queue: str, settings: Settings
) -> None:
    """While a runaway expression uses its whole time budget, another activity on the same
    worker keeps heartbeating within a 1 s heartbeat timeout; the expression fails its own step."""
    registry = default_registry(entry_points=False)
    registry.add(beat)
    acts = ToolActivities(
        registry, settings.model_copy(update={"stepgate_transform_timeout_s": 3.0})
    )
    runaway = make_call("data.transform", {"data": list(range(100)), "expression": SLOW})
    probe = make_call("test.beat", BeatInput(beats=40, interval_s=0.1).model_dump())
    try:
        async with Worker(
            client, task_queue=task_queue, workflows=[RunBeside], activities=acts.activities()
        ):
            result = await client.execute_workflow(
                RunBeside.run,
                BesideInput(call=runaway, probe=probe, heartbeat_timeout_s=1.0),
                id=f"transform-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    finally:
        await acts.http.aclose()
    assert result.call.error_type == "TransformBudgetExceeded", result.call
    assert result.call.non_retryable is True and "STEPGATE_TRANSFORM_TIMEOUT_S" in str(
        result.call.message
    )
    assert result.probe.output == {"beats": 40}, result.probe
