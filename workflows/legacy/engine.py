"""The engine of PipelineWorkflow runs started before `core-v2` (frozen: do not change).

Runs whose history lacks the `core-v2` patch marker replay and finish on this code, exactly as
they were recorded. Delete this package once no such run is open and no recorded history under
tests/histories/ that predates core-v2 needs it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    import jsonschema

    from activities.models import ARTIFACT_MARKER, ToolCall, ToolResult
    from workflows import expr
    from workflows.contract import (
        SA_PIPELINE,
        TERMINAL_STEP_STATES,
        RunState,
        StepState,
    )
    from workflows.definition import Definition, StepSpec
    from workflows.durations import parse_duration
    from workflows.legacy.gates import SYSTEM_ACTOR, Gate, merge_patch
    from workflows.legacy.gating import GatingMixin
    from workflows.legacy.steprun import StepRun, failure_message, preview_of
    from workflows.models import (
        AuditEntry,
        CompensationView,
        GateSummary,
        PipelineInput,
        PipelineResult,
    )
    from workflows.policies import (
        COMPENSATE_RETRY,
        COMPENSATE_TIMEOUT,
        retry_policy,
    )
    from workflows.refs import RefError


class StepFailed(Exception):
    """A step ended in failure (after retries, or rejected at a gate)."""


class RunCancelled(Exception):
    """A gate decided to cancel the whole run."""


class LegacyPipeline(GatingMixin):
    """The pre-core-v2 engine; PipelineWorkflow delegates to it for runs recorded before it."""

    def __init__(self, inp: PipelineInput) -> None:
        self._inp = inp
        self._def: Definition = inp.definition
        self._input = inp.definition.effective_input(inp.input)
        self._steps: dict[str, StepRun] = {s.id: StepRun(spec=s) for s in self._def.steps}
        self._paused = False
        self._wake = False
        self._fatal: str | None = None
        self._cancelled_by: str | None = None
        self._closed: RunState | None = None
        self._output: Any = None
        self._audit: list[AuditEntry] = []
        self._revision = 0
        self._seq = 0
        self._sa_state: str | None = None
        self._sa_awaiting: list[str] | None = None
        self._memo_gates: list[GateSummary] = []
        self._started_at = workflow.now()
        self._background: set[asyncio.Task[None]] = set()

    # ---- run ---------------------------------------------------------------------------------

    async def run(self, inp: PipelineInput) -> PipelineResult:
        workflow.upsert_search_attributes([SA_PIPELINE.value_set(self._def.name)])
        self._publish()
        try:
            await self._schedule()
            if self._cancelled_by:
                raise RunCancelled(self._cancelled_by)
            if self._fatal:
                raise StepFailed(self._fatal)
            self._output = self._scope(lenient=True).resolve(self._def.output)
        except asyncio.CancelledError:
            await asyncio.shield(self._compensate())
            self._close(RunState.CANCELLED, "cancelled")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise
        except RunCancelled as err:
            await self._compensate()
            self._close(RunState.CANCELLED, f"cancelled at a gate by {err}")
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(
                f"run cancelled at a gate by {err}", type="RunCancelled", non_retryable=True
            ) from None
        except (StepFailed, RefError) as err:
            await self._compensate()
            self._close(RunState.FAILED, str(err))
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(str(err), type="PipelineFailed", non_retryable=True) from None
        self._close(RunState.COMPLETED, None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return PipelineResult(
            state=RunState.COMPLETED,
            output=self._output,
            steps={sid: r.state.value for sid, r in self._steps.items()},
        )

    async def _schedule(self) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            await self._schedule_until_done(tasks)
        except GeneratorExit:
            # The worker dropped this run from its cache and is closing its coroutines: nothing
            # may be awaited now (the run resumes from history elsewhere).
            raise
        except BaseException:
            await self._stop_running(tasks)
            raise
        await self._stop_running(tasks)

    async def _schedule_until_done(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        while not (self._fatal or self._cancelled_by):
            if not self._paused:
                self._start_ready(tasks)
            if all(r.state in TERMINAL_STEP_STATES for r in self._steps.values()):
                return
            self._wake = False
            await workflow.wait_condition(lambda: self._wake)

    @staticmethod
    async def _stop_running(tasks: dict[str, asyncio.Task[None]]) -> None:
        running = [t for t in tasks.values() if not t.done()]
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def _start_ready(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        limit = self._def.max_parallel
        for sid, run in self._steps.items():
            if run.state != StepState.PENDING or sid in tasks:
                continue
            deps = [self._steps[n] for n in run.spec.needs]
            if any(d.state not in TERMINAL_STEP_STATES for d in deps):
                continue
            blocked = [d for d in deps if not self._satisfies(d, run.spec)]
            if blocked:
                names = ", ".join(f"{d.spec.id!r} ({d.state.value})" for d in blocked)
                self._finish_step(run, StepState.SKIPPED, reason=f"needs {names}")
                continue
            if limit is not None and sum(not t.done() for t in tasks.values()) >= limit:
                return
            tasks[sid] = asyncio.create_task(self._run_step(run))

    @staticmethod
    def _satisfies(dep: StepRun, spec: StepSpec) -> bool:
        if dep.state == StepState.SUCCEEDED or (dep.state == StepState.SKIPPED and dep.has_output):
            return True
        return dep.state == StepState.SKIPPED and spec.allow_skipped_needs

    # ---- one step ----------------------------------------------------------------------------

    async def _run_step(self, run: StepRun) -> None:
        try:
            await self._execute_step(run)
        except asyncio.CancelledError:
            if run.gate and run.gate.undecided:
                run.gate.close("cancel", SYSTEM_ACTOR, workflow.now())
            self._finish_step(run, StepState.CANCELLED, reason="run stopped")
            raise
        except (StepFailed, RefError, expr.ExpressionError) as err:
            self._finish_step(run, StepState.FAILED, error=str(err))
            if run.spec.on_error == "fail":
                self._fatal = self._fatal or f"step {run.spec.id!r} failed: {err}"
        except RunCancelled as err:
            self._finish_step(run, StepState.CANCELLED, reason=f"run cancelled by {err}")
            self._cancelled_by = self._cancelled_by or str(err)
        finally:
            self._wake = True

    async def _execute_step(self, run: StepRun) -> None:
        spec = run.spec
        scope = self._scope()
        if spec.if_ and not expr.evaluate(expr.parse(spec.if_), scope.lookup):
            self._finish_step(run, StepState.SKIPPED, reason=f"condition false: {spec.if_}")
            return
        run.state = StepState.RUNNING
        run.started_at = workflow.now()
        self._touch()
        args = scope.resolve(spec.with_)
        gate_spec = spec.approval
        if gate_spec and gate_spec.stage == "before":
            gate = await self._gate(run, gate_spec, "before", args)
            if gate.outcome == "modify":
                args = merge_patch(args, gate.patch)
            elif gate.outcome != "approve":
                self._gate_end(run, gate)
                return
        while True:
            try:
                output = await self._invoke(run, args)
            except (ActivityError, ChildWorkflowError) as err:
                if is_cancelled_exception(err):
                    raise asyncio.CancelledError(str(err)) from err
                message = failure_message(err)
                if not (gate_spec and gate_spec.stage == "on_failure"):
                    raise StepFailed(message) from None
                run.error = message
                gate = await self._gate(
                    run, gate_spec, "on_failure", {"error": message, "inputs": args}
                )
                if gate.outcome == "retry":
                    args = merge_patch(args, gate.patch or {})
                    run.round += 1
                    run.error = None
                    continue
                if gate.outcome == "skip" and gate.patch is not None:
                    self._set_output(run, gate.patch, None, None)
                self._gate_end(run, gate, failure=message)
                return
            if gate_spec and gate_spec.stage == "after":
                self._set_output(run, *output)
                gate = await self._gate(run, gate_spec, "after", run.output)
                if gate.outcome == "retry":
                    args = merge_patch(args, gate.patch or {})
                    run.round += 1
                    continue
                if gate.outcome == "modify":
                    self._set_output(run, merge_patch(run.output, gate.patch), None, None)
                elif gate.outcome != "approve":
                    self._gate_end(run, gate)
                    return
                self._finish_step(run, StepState.SUCCEEDED)
                return
            self._set_output(run, *output)
            self._finish_step(run, StepState.SUCCEEDED)
            return

    def _gate_end(self, run: StepRun, gate: Gate, failure: str | None = None) -> None:
        """Apply a gate outcome that stops the step: skip, reject or cancel."""
        who = gate.decided_by or SYSTEM_ACTOR
        if gate.outcome == "skip":
            self._finish_step(
                run, StepState.SKIPPED, reason=f"skipped at {gate.stage} gate by {who}"
            )
        elif gate.outcome == "cancel":
            raise RunCancelled(who)
        else:
            raise StepFailed(failure or f"rejected at {gate.stage} gate by {who}")

    async def _invoke(
        self, run: StepRun, args: dict[str, Any]
    ) -> tuple[Any, str | None, dict[str, Any] | None]:
        """Run the step's tool (or child pipeline); returns (output, preview, artifact)."""
        spec = run.spec
        defaults = self._def.defaults
        queue = spec.task_queue or defaults.task_queue or workflow.info().task_queue
        info = workflow.info()
        if spec.pipeline:
            name = str(spec.pipeline).partition("@")[0]
            child_def = self._inp.pipelines.get(name)
            if child_def is None:
                raise StepFailed(f"pipeline {name!r} was not in the run's snapshot")
            issues = _input_issues(child_def, args)
            if issues:
                raise StepFailed(
                    f"input for pipeline {name!r} does not match its schema: " + "; ".join(issues)
                )
            run.attempts += 1
            suffix = f"-r{run.round}" if run.round else ""
            result = await workflow.execute_child_workflow(
                "PipelineWorkflow",
                self._inp.model_copy(update={"definition": child_def, "input": args}),
                id=f"{info.workflow_id}--{spec.id}{suffix}",
                task_queue=queue,
                static_summary=f"{child_def.name} v{child_def.version} (child of {info.workflow_id})",
                result_type=PipelineResult,
            )
            return result.output, None, None
        tool_ref = spec.resolved_tool or spec.tool or ""
        name, _, version = tool_ref.partition("@")
        key = f"{info.workflow_id}/{spec.id}" + (f"/r{run.round}" if run.round else "")
        res = await workflow.execute_activity(
            name,
            ToolCall(
                tool=name,
                version=version,
                step_id=spec.id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                args=args,
                idempotency_key=key,
                max_output_bytes=spec.max_output_bytes,
            ),
            result_type=ToolResult,
            task_queue=queue,
            start_to_close_timeout=parse_duration(spec.timeout or defaults.timeout),
            schedule_to_close_timeout=parse_duration(spec.total_timeout)
            if spec.total_timeout
            else None,
            heartbeat_timeout=self._heartbeat(spec),
            retry_policy=retry_policy(spec.retry, defaults),
            summary=f"{spec.id}: {tool_ref}",
        )
        run.attempts = max(run.attempts + 1, res.attempt)
        if res.artifact is not None:
            ref = res.artifact.model_dump()
            return {ARTIFACT_MARKER: ref}, res.preview, ref
        return res.output, res.preview, None

    def _heartbeat(self, spec: StepSpec) -> timedelta | None:
        value = spec.heartbeat_timeout or self._def.defaults.heartbeat_timeout
        return parse_duration(value) if value else None

    def _set_output(
        self, run: StepRun, output: Any, preview: str | None, artifact: dict[str, Any] | None
    ) -> None:
        run.output = output
        run.has_output = True
        run.artifact = artifact
        run.preview = preview if preview is not None else preview_of(output)

    def _finish_step(
        self, run: StepRun, state: StepState, *, error: str | None = None, reason: str | None = None
    ) -> None:
        run.state = state
        run.ended_at = workflow.now()
        if error is not None:
            run.error = error
        if reason is not None:
            run.reason = reason
        if state == StepState.SUCCEEDED:
            self._seq += 1
            run.completed_seq = self._seq
        self._touch()

    # ---- compensation ------------------------------------------------------------------------

    async def _compensate(self) -> None:
        """Undo succeeded steps in reverse completion order; record each outcome."""
        done = sorted(
            (
                (r, r.spec.compensate)
                for r in self._steps.values()
                if r.state == StepState.SUCCEEDED and r.spec.compensate is not None
            ),
            key=lambda pair: pair[0].completed_seq,
            reverse=True,
        )
        info = workflow.info()
        for r, comp in done:
            tool_ref = comp.resolved_tool or comp.tool
            name, _, version = tool_ref.partition("@")
            try:
                args = self._scope().resolve(comp.with_)
                await workflow.execute_activity(
                    name,
                    ToolCall(
                        tool=name,
                        version=version,
                        step_id=r.spec.id,
                        workflow_id=info.workflow_id,
                        run_id=info.run_id,
                        args=args,
                        idempotency_key=f"{info.workflow_id}/{r.spec.id}/compensate",
                        scope="compensate",
                    ),
                    result_type=ToolResult,
                    task_queue=r.spec.task_queue
                    or self._def.defaults.task_queue
                    or info.task_queue,
                    start_to_close_timeout=parse_duration(comp.timeout)
                    if comp.timeout
                    else COMPENSATE_TIMEOUT,
                    retry_policy=retry_policy(comp.retry, self._def.defaults)
                    if comp.retry
                    else COMPENSATE_RETRY,
                    summary=f"{r.spec.id}: compensate with {tool_ref}",
                )
                r.compensation = CompensationView(state="succeeded", at=workflow.now())
                r.state = StepState.COMPENSATED
            except (ActivityError, RefError) as err:
                r.compensation = CompensationView(
                    state="failed", error=failure_message(err), at=workflow.now()
                )
            self._touch()


def _input_issues(definition: Definition, data: Any) -> list[str]:
    """The run input's JSON Schema errors, as this engine always checked them."""
    validator = jsonschema.Draft202012Validator(definition.input)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{loc_to_path(list(e.absolute_path), 'input')}: {e.message}" for e in errors]


def loc_to_path(loc: list[Any], prefix: str) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out
