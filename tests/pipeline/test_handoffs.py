"""Handoffs between steps through real runs: llm.chat replies held to their schema, and
flow.fail failing a run on purpose."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from activities.config import Settings
from activities.registry import ToolRegistry
from activities.tools.flow import flow_fail
from activities.tools.llm import llm_chat
from tests.pipeline.conftest import Start
from tests.support import fakes
from tests.tools.chat import ScriptedChat
from tests.tools.server import LocalServer
from workflows.pipeline import PipelineWorkflow

ANSWER = """
name: answer
steps:
  - id: ask
    tool: llm.chat
    with:
      messages: [{role: user, content: "The answer?"}]
      response_format:
        name: answer
        json_schema: {type: object, required: [answer], properties: {answer: {type: integer}}}
    retry: {max_attempts: 3, initial_interval: 100ms, backoff: 1.0}
  - id: use
    needs: [ask]
    tool: test.echo
    with: {answer: "${steps.ask.output.json.answer}"}
output: "${steps.use.output}"
"""


@pytest.fixture
def registry() -> ToolRegistry:
    reg = fakes.fake_registry()
    reg.add(flow_fail)
    reg.add(llm_chat)
    return reg


@pytest.fixture
def llm_server() -> Iterator[LocalServer]:
    srv = LocalServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def settings(settings: Settings, llm_server: LocalServer) -> Settings:
    """The session's settings, with llm.chat pointed at the scripted endpoint."""
    return settings.model_copy(
        update={
            "stepgate_llm_base_url": llm_server.url("/v1"),
            "stepgate_llm_model": "test-model",
        }
    )


async def test_llm_reply_breaking_schema_is_retried_to_success(
    llm_server: LocalServer, worker: Worker, start: Start
) -> None:
    """A reply that does not fit the schema is retried under the step's policy; the next one,
    which fits, is handed to the next step through `output.json`."""
    chat = ScriptedChat({"answer": "forty-two"}, {"answer": 42})
    llm_server.route("POST", "/v1/chat/completions", chat)
    handle = await start(ANSWER)
    result = await handle.result()
    assert result.state == "completed" and result.output == {"answer": 42, "step": "use"}
    status = await handle.query(PipelineWorkflow.status)
    ask = status.steps[0]
    assert ask.state == "succeeded" and ask.attempts == 2 and chat.calls == 2
    assert json.loads(ask.output_preview or "{}")["json"] == {"answer": 42}


async def test_llm_reply_always_breaking_schema_fails_after_retries(
    llm_server: LocalServer, worker: Worker, start: Start
) -> None:
    """A model that never fits the schema fails the step once its retries run out, with the
    mismatch named in the step's error and the run's."""
    chat = ScriptedChat({"answer": "forty-two"})
    llm_server.route("POST", "/v1/chat/completions", chat)
    handle = await start(ANSWER)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    ask = status.steps[0]
    mismatch = "output.json.answer: 'forty-two' is not of type 'integer'"
    assert ask.state == "failed" and ask.attempts == 3 and chat.calls == 3
    assert mismatch in (ask.error or "") and mismatch in (status.error or "")
    assert status.steps[1].state != "succeeded"


async def test_flow_fail_fails_run_once_and_compensates(worker: Worker, start: Start) -> None:
    """flow.fail fails its step at the first attempt with the pipeline's message, the run fails,
    and the steps that succeeded are compensated."""
    fakes.LEDGER.clear()
    handle = await start(
        """
name: guarded
input: {type: object, properties: {risk: {type: integer}}}
steps:
  - id: reserve
    tool: test.ledger
    with: {entry: reserve}
    compensate: {tool: test.ledger, with: {entry: reserve}}
  - id: too_risky
    needs: [reserve]
    if: "input.risk > 3"
    tool: flow.fail
    with: {message: "risk ${input.risk} is above 3", details: {risk: "${input.risk}"}}
    retry: {max_attempts: 5, initial_interval: 100ms}
  - id: ship
    needs: [too_risky]
    tool: test.ledger
    with: {entry: ship}
""",
        {"risk": 5},
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await handle.query(PipelineWorkflow.status)
    by_id = {s.id: s for s in status.steps}
    assert by_id["too_risky"].state == "failed" and by_id["too_risky"].attempts == 1
    assert by_id["too_risky"].error == "risk 5 is above 3"
    assert "risk 5 is above 3" in (status.error or "")
    assert by_id["reserve"].state == "compensated" and by_id["ship"].state != "succeeded"
    assert fakes.LEDGER == ["reserve", "undo:reserve"]


async def test_flow_fail_skipped_when_condition_false(worker: Worker, start: Start) -> None:
    """A flow.fail step whose condition is false is skipped and the run completes."""
    handle = await start(
        """
name: guarded
input: {type: object, properties: {risk: {type: integer}}}
steps:
  - id: too_risky
    if: "input.risk > 3"
    tool: flow.fail
    with: {message: "too risky"}
  - id: ship
    tool: test.echo
""",
        {"risk": 1},
    )
    result = await handle.result()
    assert result.state == "completed"
    assert result.steps == {"too_risky": "skipped", "ship": "succeeded"}
