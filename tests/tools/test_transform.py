"""data.transform with JMESPath."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
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
