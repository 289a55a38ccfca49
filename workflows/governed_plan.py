"""The Plan phase of a governed run and its risk assessment: a given plan checked, or plans asked
of the LLM planner (shown the tools and similar past runs, repaired with every error); then the
tier, which an LLM assessor may only raise."""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        MEMORY_SEARCH_ACTIVITY,
        MemorySearch,
        MemorySearchResult,
        PlanResult,
        ToolCall,
        ToolResult,
    )
    from workflows.calls import failure_message
    from workflows.contract import RunState
    from workflows.governed_run import GovernedRun, Stopped
    from workflows.internal import validate_plan
    from workflows.retries import LLM_RETRY, LLM_TIMEOUT, SEARCH_RETRY, SEARCH_TIMEOUT
    from workflows.rules import governed, planner, risk
    from workflows.rules.units import CheckPlan

ASSESSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tier", "reasons"],
    "properties": {
        "tier": {"type": "integer", "minimum": 1, "maximum": 3},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}
ASSESSOR_SYSTEM = (
    "You assess the risk of a plan. You may only add reasons and raise the tier "
    "(1 low, 2 peer review, 3 senior review)."
)


async def plan(run: GovernedRun) -> None:
    """Accept a valid plan into the state, or stop the run with every error found."""
    st, inp = run.state, run.inp
    if inp.plan is not None:
        st.plan_source, st.plan_attempts = "given", 1
        found = await check(run, inp.plan)
        if found.errors:
            st.plan_errors = found.errors
            raise Stopped(
                RunState.FAILED, "the given plan is not valid: " + "; ".join(found.errors)
            )
        governed.accept(run.state, found)
        return
    st.plan_source = "llm"
    st.similar = await _similar(run)
    previous: Any = None
    errors: list[str] = []
    for attempt in range(1, inp.policy.planner_attempts + 1):
        await workflow.wait_condition(lambda: not run.paused or run.cancel is not None)
        run.check_cancel()
        st.plan_attempts = attempt
        run.touch()
        asked = planner.messages(inp.request, inp.context, inp.tools, st.similar, previous, errors)
        previous = await ask(run, f"plan-{attempt}", asked, planner.PLAN_SCHEMA)
        found = await check(run, previous)
        if not found.errors:
            governed.accept(run.state, found)
            return
        errors = st.plan_errors = found.errors
        run.note("plan_refused", f"attempt {attempt}: " + "; ".join(errors[:5]))
    raise Stopped(
        RunState.FAILED,
        f"no valid plan after {inp.policy.planner_attempts} attempts: " + "; ".join(errors),
    )


async def check(run: GovernedRun, proposed: Any) -> PlanResult:
    """The plan checked on a worker (like any definition, within the policy's bounds)."""
    allowed, policy = [t.name for t in run.inp.tools], run.inp.policy
    return await validate_plan(
        CheckPlan("plan", proposed, allowed, policy.max_steps, list(policy.allowed_task_queues))
    )


async def _similar(run: GovernedRun) -> list[Any]:
    """The most similar past runs; planning goes on without them if the memory is down."""
    try:
        found: MemorySearchResult = await workflow.execute_activity(
            MEMORY_SEARCH_ACTIVITY,
            MemorySearch(q=run.inp.request[:2_000], limit=planner.PAST_RUNS),
            result_type=MemorySearchResult,
            start_to_close_timeout=SEARCH_TIMEOUT,
            retry_policy=SEARCH_RETRY,
            summary="similar past runs",
        )
    except ActivityError as err:
        run.note("memory", f"planning without past runs: {failure_message(err)}")
        return []
    return list(found.hits)


async def ask(
    run: GovernedRun, key: str, messages: list[dict[str, Any]], schema: dict[str, Any]
) -> Any:
    """One answer of the LLM in the JSON shape asked for (through the llm.chat tool)."""
    info = workflow.info()
    call = ToolCall(
        tool="llm.chat",
        version="",
        step_id=key,
        workflow_id=info.workflow_id,
        run_id=info.run_id,
        args={
            "messages": messages,
            "response_format": {
                "name": key.partition("-")[0],
                "json_schema": schema,
                "strict": False,
            },
        },
        slots=[],
        idempotency_key=f"{info.workflow_id}/{key}",
    )
    try:
        res: ToolResult = await workflow.execute_activity(
            "llm.chat",
            call,
            result_type=ToolResult,
            start_to_close_timeout=LLM_TIMEOUT,
            retry_policy=LLM_RETRY,
            summary=f"{key}: ask the LLM",
        )
    except ActivityError as err:
        raise Stopped(
            RunState.FAILED, f"the LLM could not be asked: {failure_message(err)}"
        ) from None
    output = res.output if isinstance(res.output, dict) else {}
    return output.get("json", output.get("parsed"))


async def llm_assessment(run: GovernedRun) -> None:
    """The LLM assessor's reasons and tier added; a useless answer is noted and ignored."""
    st, inp = run.state, run.inp
    if st.assessment is None:
        return
    asked = [
        {"role": "system", "content": ASSESSOR_SYSTEM},
        {
            "role": "user",
            "content": json.dumps(
                {
                    "request": inp.request,
                    "plan": st.plan,
                    "assessment": st.assessment.model_dump(mode="json"),
                },
                sort_keys=True,
            ),
        },
    ]
    try:
        said = await ask(run, "assess-1", asked, ASSESSOR_SCHEMA)
        tier = int(said.get("tier", 1)) if isinstance(said, dict) else 1
        tier = min(max(tier, 1), 3)
        # Each reason keeps the tier the assessor gave, so a modify cannot shed it.
        reasons = [
            risk.Reason(rule="llm", detail=str(r)[:500], tier=tier)
            for r in (said or {}).get("reasons", [])[:10]
        ] or [risk.Reason(rule="llm", detail="the assessor's tier", tier=tier)]
    except (Stopped, ValueError, TypeError, AttributeError, OverflowError) as err:
        run.note("assessor", f"the LLM assessor gave no opinion: {err}")
        return
    st.assessment = risk.raised(st.assessment, tier, reasons)
