"""flow.fail called directly: the failure it raises, and the bounds on what it carries."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.runtime import ToolActivities
from activities.tools.flow import MAX_MESSAGE_CHARS
from tests.tools.conftest import make_call


async def test_fail_raises_non_retryable_with_message_and_details(acts: ToolActivities) -> None:
    """The step fails with the given message, type FlowFailed, never retried, details kept."""
    call = make_call("flow.fail", {"message": "stop here", "details": {"ticket": "OPS-7"}})
    with pytest.raises(ApplicationError) as err:
        await acts.execute(call)
    assert err.value.type == "FlowFailed" and err.value.non_retryable is True
    assert err.value.message == "stop here"
    assert err.value.details == ({"details": {"ticket": "OPS-7"}},)


async def test_fail_refuses_message_over_limit(acts: ToolActivities) -> None:
    """A message longer than MAX_MESSAGE_CHARS is an input error naming the field, not a failure
    message that floods the run's status."""
    call = make_call("flow.fail", {"message": "x" * (MAX_MESSAGE_CHARS + 1)})
    with pytest.raises(ApplicationError) as err:
        await acts.execute(call)
    assert err.value.type == "InvalidToolInput" and "message:" in err.value.message
