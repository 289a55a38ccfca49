"""Runs tools as Temporal activities: one activity per tool name, dispatching on the pinned version."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import destinations, shapes, slots
from activities.artifacts import ArtifactStore, LocalArtifactStore
from activities.bindings import SendRules
from activities.config import Settings
from activities.context import ToolContext
from activities.egress_client import make_http_client
from activities.errors import fatal
from activities.masking import mask, mask_text, mask_values
from activities.metrics import step_measured
from activities.models import ARTIFACT_MARKER, ArtifactRef, ToolCall, ToolResult
from activities.registry import Tool, ToolError, ToolRegistry
from activities.secrets import SecretStore

log = structlog.get_logger("stepgate.activity")


def format_validation_error(err: ValidationError, where: str) -> str:
    """`step 'fetch' (http.request@1.0.0): url: Field required; timeout: ...`"""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(input)"
        parts.append(f"{loc}: {e['msg']}")
    return f"{where}: " + "; ".join(parts)


def preview(value: Any, limit: int, secrets: set[str]) -> str:
    """A short, masked JSON rendering for status output and logs."""
    text = json.dumps(mask(value, secrets), default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def masked(err: ApplicationError, used: set[str]) -> ApplicationError:
    """The same failure with every secret value used by the call masked in its message."""
    if not used:
        return err
    return ApplicationError(
        mask_text(err.message, used),
        *mask(list(err.details), used),
        type=err.type,
        non_retryable=err.non_retryable,
        next_retry_delay=err.next_retry_delay,
    )


def with_attempt(err: ApplicationError) -> ApplicationError:
    """The same failure, telling the workflow which attempt it ended (status shows attempts)."""
    attempt = activity.info().attempt if activity.in_activity() else 1
    return ApplicationError(
        err.message,
        *err.details,
        {"stepgate_attempt": attempt},
        type=err.type,
        non_retryable=err.non_retryable,
        next_retry_delay=err.next_retry_delay,
    )


async def check_output_schema(
    schema: dict[str, Any], data: Any, where: str, used: set[str]
) -> None:
    """Fail the step, without a retry, when the tool's output breaks the step's `output_schema`:
    the same call would produce the same shape again. The message quotes values: masked too."""
    bad_schema, issues = await shapes.check(schema, data, "output_schema", "output")
    if bad_schema:
        message = f"{where} output_schema is not a safe JSON Schema: {bad_schema}"
        raise fatal(mask_text(message, used), "InvalidOutputSchema")
    if issues:
        message = f"{where} output does not match the step's output_schema: {issues}"
        raise fatal(mask_text(message, used), "OutputSchemaMismatch")


class ToolActivities:
    """Built once per worker with its dependencies; `activities()` gives what to register."""

    def __init__(
        self,
        registry: ToolRegistry,
        settings: Settings,
        *,
        http: httpx.AsyncClient | None = None,
        artifacts: ArtifactStore | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.http = http or make_http_client(settings)
        self.artifacts = artifacts or LocalArtifactStore(settings.artifact_root)
        self.secrets = secrets or SecretStore(settings.stepgate_secrets_dir)

    def activities(self) -> list[Callable[..., Any]]:
        """One activity per tool name, so the Web UI and history name the tool."""
        return [self._activity_for(name) for name in self.registry.names()]

    def _activity_for(self, name: str) -> Callable[..., Any]:
        async def run_tool(call: ToolCall) -> ToolResult:
            try:
                async with step_measured(name):
                    return await self.execute(call)
            except ApplicationError as err:
                raise with_attempt(err) from err.__cause__

        run_tool.__name__ = run_tool.__qualname__ = "tool_" + name.replace(".", "_")
        return activity.defn(name=name)(run_tool)

    async def execute(self, call: ToolCall) -> ToolResult:
        try:
            tool = self.registry.resolve(
                f"{call.tool}@{call.version}" if call.version else call.tool
            )
        except ToolError as err:
            raise fatal(str(err), "UnknownTool") from err
        where = f"step {call.step_id!r} ({tool.ref})"
        used: set[str] = set()
        names: set[str] = set()
        if call.slots is None:  # a run started before slots: resolved as it always was
            args = await self._load_artifact_refs(self.secrets.resolve(call.args, used))
        else:
            args = await slots.fill(
                call.args, call.slots, self.secrets, self.artifacts, used, names
            )
        rules = SendRules.of(names, call.secret_bindings)
        try:
            inp = tool.input_model.model_validate(args)
        except ValidationError as err:
            raise fatal(
                mask_text(format_validation_error(err, f"{where} input"), used), "InvalidToolInput"
            ) from None
        ctx = ToolContext(
            call=call,
            settings=self.settings,
            http=self.http,
            artifacts=self.artifacts,
            log=log.bind(step=call.step_id, tool=tool.ref, workflow_id=call.workflow_id),
            secret_values=used,
            send_rules=rules,
        )
        try:
            with destinations.sending(rules):
                raw = await self._run_with_heartbeat(tool, inp, ctx)
        except ApplicationError as err:
            raise masked(err, used) from None
        except Exception as err:
            message = mask_text(str(err) or type(err).__name__, used)
            raise ApplicationError(message, type=type(err).__name__) from None
        try:
            out = (
                raw if isinstance(raw, tool.output_model) else tool.output_model.model_validate(raw)
            )
        except ValidationError as err:
            raise fatal(
                format_validation_error(err, f"{where} output"), "InvalidToolOutput"
            ) from None
        data = out.model_dump(mode="json")
        if used:
            # A secret echoed back by the outside world must not reach workflow history.
            data = mask_values(data, used)
        if call.output_schema is not None:
            # The output as later steps will see it: masked, and before it may be offloaded.
            await check_output_schema(call.output_schema, data, where, used)
        return await self._result(call, data, used)

    async def _run_with_heartbeat(self, tool: Tool, inp: BaseModel, ctx: ToolContext) -> Any:
        """Heartbeat in the background so Temporal can deliver cancellation to any tool."""
        info = activity.info() if activity.in_activity() else None
        timeout = info.heartbeat_timeout if info else None
        if not timeout:
            return await tool.fn(inp, ctx)
        interval = max(timeout.total_seconds() / 3, 0.1)

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await asyncio.sleep(interval)

        beater = asyncio.create_task(beat())
        try:
            return await tool.fn(inp, ctx)
        finally:
            beater.cancel()

    async def _result(self, call: ToolCall, data: Any, used: set[str]) -> ToolResult:
        body = json.dumps(data, separators=(",", ":")).encode()
        limit = call.max_output_bytes or self.settings.stepgate_max_output_bytes
        if call.inline_bytes is not None:  # what the run can still keep of this call
            limit = min(limit, call.inline_bytes)
        shown_bytes = self.settings.stepgate_preview_bytes
        if call.preview_bytes is not None:
            shown_bytes = min(shown_bytes, call.preview_bytes)
        shown = preview(data, shown_bytes, used)
        attempt = activity.info().attempt if activity.in_activity() else 1
        if len(body) <= limit:
            return ToolResult(output=data, preview=shown, size=len(body), attempt=attempt)
        ref = await self.artifacts.put(
            call.workflow_id, f"outputs/{call.step_id}.{call.scope}.json", body, "application/json"
        )
        return ToolResult(artifact=ref, preview=shown, size=len(body), attempt=attempt)

    async def _load_artifact_refs(self, obj: Any) -> Any:
        """Calls of runs started before slots existed only: replace every
        `{"$artifact": ref, "path": [...]}` marker by the data it names."""
        if isinstance(obj, dict):
            if ARTIFACT_MARKER in obj and set(obj) <= {ARTIFACT_MARKER, "path"}:
                ref = ArtifactRef.model_validate(obj[ARTIFACT_MARKER])
                value: Any = json.loads(await self.artifacts.read_ref(ref))
                for key in obj.get("path", []):
                    try:
                        value = value[key]
                    except (KeyError, IndexError, TypeError):
                        raise fatal(
                            f"reference into stored output {ref.path!r}: no field {key!r}",
                            "BadReference",
                        ) from None
                return value
            return {k: await self._load_artifact_refs(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [await self._load_artifact_refs(v) for v in obj]
        return obj
