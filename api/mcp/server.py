"""The MCP server both transports serve: tools, a run's status as a resource, errors as tool errors.

`build_server(backend_of)` takes how a request finds its backend (the REST API with the
caller's key): /mcp builds one per request from the request's key, `stepgate mcp` has one for
the process. What a key is offered follows from its permissions at each `tools/list`, and every
call checks again (a tool not offered is refused even when named). Every failure reaches the
client as a tool error (or, for a resource, a JSON-RPC error) saying what and why, never a
stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import unquote

import structlog
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    TextContent,
    TextResourceContents,
    Tool,
    ToolAnnotations,
)

from activities.jsonschema_safe import describe, value_issues
from api.mcp.backend import Backend, ToolError, segment
from api.mcp.catalog import pipeline_tools
from api.mcp.gates import REVIEW_DESCRIPTION, REVIEW_GATE, REVIEW_SCHEMA, review_gate
from api.mcp.tools import FIXED
from api.schemas.common import MAX_PATH_ID_CHARS
from workflows.builds import package_version

log = structlog.get_logger("stepgate.mcp")

BackendOf = Callable[[ServerRequestContext[Any, Any]], AbstractAsyncContextManager[Backend]]
RUN_URI = "stepgate://runs/"
RUN_TEMPLATE = RUN_URI + "{workflow_id}"
# Runs listed as resources: the newest ones; any other is read by its URI.
LISTED_RUNS = 20
INSTRUCTIONS = (
    "Stepgate runs pipelines whose steps may wait at approval gates for a person. Start runs "
    "with start_run or a run_<pipeline> tool, follow them with get_run or the run's resource, "
    "and find waiting gates with list_approvals. A gate is decided by a person on its page in "
    "the web app (review_gate sends them there); `decide` is offered only to keys allowed to "
    "decide through MCP."
)
_FIXED = {t.name: t for t in FIXED}
_REVIEW = Tool(
    name=REVIEW_GATE,
    title="Ask the person to decide a gate",
    description=REVIEW_DESCRIPTION,
    input_schema=REVIEW_SCHEMA,
    annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
TAKEN = {*_FIXED, REVIEW_GATE}


def _result(data: Any) -> CallToolResult:
    structured = data if isinstance(data, dict) else {"result": data}
    return CallToolResult(
        content=[TextContent(text=json.dumps(data, default=str))], structured_content=structured
    )


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=message)], is_error=True)


def _checked(schema: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The arguments, or a ToolError naming each one that breaks the tool's schema and why."""
    issues = describe(value_issues(schema, args), "")
    if issues:
        raise ToolError(
            "invalid (arguments): the arguments are not valid\n"
            + "\n".join(f"- {path or '(arguments)'}: {message}" for path, message in issues)
        )
    return args


def build_server(backend_of: BackendOf) -> Server[Any]:
    """The MCP server over `backend_of`; `stepgate mcp` and /mcp serve it alike."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], _: PaginatedRequestParams | None
    ) -> ListToolsResult:
        async with backend_of(ctx) as backend:
            try:
                caller = await backend.caller()
            except ToolError as err:
                raise MCPError(INVALID_PARAMS, str(err)) from None
            try:
                pipelines = await backend.pipelines()
            except ToolError:
                pipelines = []  # a key without `read` (an approver only) is offered no pipeline
        fixed = [
            Tool(
                name=t.name,
                description=t.description,
                input_schema=t.input_schema,
                annotations=t.annotations(),
            )
            for t in FIXED
            if t.offered(caller)
        ]
        catalog = [p.tool for p in pipeline_tools(pipelines, TAKEN).values()]
        return ListToolsResult(tools=[*fixed, _REVIEW, *catalog])

    async def call(
        ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams, backend: Backend
    ) -> Any:
        args = dict(params.arguments or {})
        name = params.name
        if name == REVIEW_GATE:
            return await review_gate(backend, ctx, params, _checked(REVIEW_SCHEMA, args))
        fixed = _FIXED.get(name)
        if fixed is not None:
            caller = await backend.caller()
            if not fixed.offered(caller):
                raise ToolError(
                    f"forbidden: {name} needs the {fixed.offered_with} permission, which "
                    f"{caller.principal!r} does not hold; use review_gate to have the person "
                    "decide on the gate's page"
                )
            return await fixed.handler(backend, _checked(fixed.input_schema, args))
        found = pipeline_tools(await backend.pipelines(), TAKEN).get(name)
        if found is None:
            raise ToolError(f"not_found: no tool named {name[:200]!r} (tools/list names them)")
        # The route checks the input against the pipeline's schema, naming each field.
        body = {"definition": found.pipeline.name, "input": args}
        return await backend.call("POST", "/workflows", body=body)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        try:
            async with backend_of(ctx) as backend:
                got = await call(ctx, params, backend)
        except ToolError as err:
            return _error(str(err))
        except Exception:
            # The client gets no internals; the log keeps the trace for the operator.
            log.exception("mcp tool failed", tool=params.name[:200])
            return _error("internal: the tool failed; see the Stepgate API log")
        return got if isinstance(got, InputRequiredResult) else _result(got)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], _: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        async with backend_of(ctx) as backend:
            try:
                page = await backend.call("GET", "/workflows", params={"page_size": LISTED_RUNS})
            except ToolError as err:
                raise MCPError(INVALID_PARAMS, str(err)) from None
        return ListResourcesResult(
            resources=[
                Resource(
                    uri=RUN_URI + segment(r["workflow_id"]),
                    name=r["workflow_id"],
                    description=f"{r.get('pipeline') or 'run'}: {r.get('state') or '?'}",
                    mime_type="application/json",
                )
                for r in page["items"]
            ]
        )

    async def list_templates(
        ctx: ServerRequestContext[Any, Any], _: PaginatedRequestParams | None
    ) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(
            resource_templates=[
                ResourceTemplate(
                    name="run",
                    title="A run's status",
                    uri_template=RUN_TEMPLATE,
                    description="the run's status as GET /workflows/{id} answers it",
                    mime_type="application/json",
                )
            ]
        )

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams
    ) -> ReadResourceResult:
        uri = str(params.uri)
        workflow_id = unquote(uri[len(RUN_URI) :]) if uri.startswith(RUN_URI) else ""
        if not workflow_id or len(workflow_id) > MAX_PATH_ID_CHARS:
            raise MCPError(
                INVALID_PARAMS,
                f"uri: not a run's status ({RUN_TEMPLATE}, the id 1 to {MAX_PATH_ID_CHARS} "
                "characters)",
            )
        async with backend_of(ctx) as backend:
            try:
                status = await backend.call("GET", f"/workflows/{segment(workflow_id)}")
            except ToolError as err:
                raise MCPError(INVALID_PARAMS, str(err)) from None
        return ReadResourceResult(
            contents=[
                TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(status))
            ]
        )

    return Server(
        "stepgate",
        version=package_version(),
        title="Stepgate",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )
