"""The fixed tools: each one REST route, its arguments the route's own fields.

Each tool's input schema is built from the REST API's own request models and bounds (the
fields of `WorkflowCreate`, `GovernedCreate`, `DecisionCreate`, the path and query bounds of
the routes), so a tool takes what its route takes. Arguments are checked against that schema
here (jsonschema_safe: bounded, every problem with its path) and by the route again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field, TypeAdapter

from activities.access import DECIDE_VIA_MCP, PRINCIPAL_NAME_PATTERN
from activities.memory import MAX_LIMIT
from activities.models import MAX_MEMORY_QUERY_CHARS
from api.auth import Caller
from api.mcp.backend import Backend, segment
from api.mcp.catalog import tool_name
from api.routes.approvals import INBOX_PAGE_MAX, PRIORITY_PARAM_MAX, PRIORITY_PATTERN
from api.schemas.common import CatalogRef, GateIdPath, WorkflowIdPath
from api.schemas.workflows import DecisionCreate, GovernedCreate, LifecycleCreate, WorkflowCreate
from api.visibility import MAX_CURSOR_CHARS
from workflows.language.limits import MAX_NAME_CHARS
from workflows.language.types import PIPELINE_NAME_PATTERN

Handler = Callable[[Backend, dict[str, Any]], Awaitable[Any]]
# An inline definition or a governed plan: the definition language's model, too large to list
# with every tool; the route checks it whole and names each problem's path.
_INLINE = {"type": "object", "description": "an inline definition (see /openapi.json, Definition)"}


def _of(model: type[BaseModel], name: str) -> dict[str, Any]:
    """One field's JSON Schema as the route's model states it."""
    field = model.model_fields[name]
    schema: dict[str, Any] = TypeAdapter(
        cast(Any, Annotated[field.annotation, field])
    ).json_schema()
    schema.pop("default", None)
    return schema


def _type(annotation: Any) -> dict[str, Any]:
    return dict(TypeAdapter(annotation).json_schema())


def object_schema(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


RUN = _type(WorkflowIdPath)
GATE = _type(GateIdPath)


@dataclass(frozen=True)
class Fixed:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler
    # The permission a key needs to be offered the tool at all (else: offered to every key;
    # the route checks its own permissions).
    offered_with: str | None = None
    read_only: bool = True

    def offered(self, caller: Caller) -> bool:
        return self.offered_with is None or caller.can(self.offered_with)

    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(read_only_hint=self.read_only, open_world_hint=not self.read_only)


def _query(args: dict[str, Any], *names: str) -> dict[str, Any]:
    return {n: args[n] for n in names if args.get(n) is not None}


async def _list_pipelines(b: Backend, args: dict[str, Any]) -> Any:
    found = await b.call("GET", "/definitions")
    return {"pipelines": [{**p, "tool": tool_name(p["name"])} for p in found]}


async def _start_run(b: Backend, args: dict[str, Any]) -> Any:
    return await b.call("POST", "/workflows", body=args)


async def _get_run(b: Backend, args: dict[str, Any]) -> Any:
    return await b.call("GET", f"/workflows/{segment(args['workflow_id'])}")


async def _list_approvals(b: Backend, args: dict[str, Any]) -> Any:
    params = _query(args, "priority", "pipeline", "requester", "page_size", "cursor")
    inbox = await b.call("GET", "/approvals", params=params)
    for item in inbox["items"]:
        item["page"] = b.gate_page(item["workflow_id"], item["gate"])
    return inbox


async def _cancel_run(b: Backend, args: dict[str, Any]) -> Any:
    body = _query(args, "reason")
    return await b.call("POST", f"/workflows/{segment(args['workflow_id'])}/cancel", body=body)


async def _start_governed(b: Backend, args: dict[str, Any]) -> Any:
    return await b.call("POST", "/governed", body=args)


async def _search_memory(b: Backend, args: dict[str, Any]) -> Any:
    return await b.call("GET", "/memory", params=_query(args, "q", "limit"))


async def _decide(b: Backend, args: dict[str, Any]) -> Any:
    body = {k: v for k, v in args.items() if k not in ("workflow_id", "gate")}
    return await b.decide(args["workflow_id"], args["gate"], body)


_DECISION = DecisionCreate.model_json_schema()

FIXED: tuple[Fixed, ...] = (
    Fixed(
        "list_pipelines",
        "The catalog (GET /definitions): every pipeline's newest version, its versions and "
        "description, and the tool that starts it.",
        object_schema([]),
        _list_pipelines,
    ),
    Fixed(
        "start_run",
        "Start a run (POST /workflows): a catalog pipeline by name (`deploy`, `deploy@2`) or an "
        "inline definition, with its input. The same workflow_id with the same arguments finds "
        "the run it started. Needs `start`; inline also `start_inline`, auto also `start_auto`.",
        object_schema(
            ["definition"],
            definition={"anyOf": [_type(CatalogRef), _INLINE]},
            input=_of(WorkflowCreate, "input"),
            workflow_id=_of(WorkflowCreate, "workflow_id"),
            approval_mode=_of(WorkflowCreate, "approval_mode"),
        ),
        _start_run,
        read_only=False,
    ),
    Fixed(
        "get_run",
        "A run's status (GET /workflows/{id}): state, progress, open gates first, latest steps "
        "and audit entries, output.",
        object_schema(["workflow_id"], workflow_id=RUN),
        _get_run,
    ),
    Fixed(
        "list_approvals",
        "The gates waiting for this key's principal (GET /approvals), most urgent first, each "
        "with `page`: where the person decides it in the web app.",
        object_schema(
            [],
            priority=_type(
                Annotated[str, Field(max_length=PRIORITY_PARAM_MAX, pattern=PRIORITY_PATTERN)]
            ),
            pipeline=_type(
                Annotated[str, Field(max_length=MAX_NAME_CHARS, pattern=PIPELINE_NAME_PATTERN)]
            ),
            requester=_type(
                Annotated[str, Field(max_length=MAX_NAME_CHARS, pattern=PRINCIPAL_NAME_PATTERN)]
            ),
            page_size=_type(Annotated[int, Field(ge=1, le=INBOX_PAGE_MAX)]),
            cursor=_type(Annotated[str, Field(max_length=MAX_CURSOR_CHARS)]),
        ),
        _list_approvals,
    ),
    Fixed(
        "cancel_run",
        "Cancel a run (POST /workflows/{id}/cancel) with an optional reason; its audit records "
        "who and why. Needs `lifecycle`.",
        object_schema(["workflow_id"], workflow_id=RUN, reason=_of(LifecycleCreate, "reason")),
        _cancel_run,
        read_only=False,
    ),
    Fixed(
        "start_governed",
        "Start a governed run (POST /governed): Plan, Review by risk tier, Execute, Remember. "
        "Needs `start_governed`.",
        object_schema(
            ["request"],
            request=_of(GovernedCreate, "request"),
            context=_of(GovernedCreate, "context"),
            plan=_INLINE,
            policy=_of(GovernedCreate, "policy"),
            workflow_id=_of(GovernedCreate, "workflow_id"),
        ),
        _start_governed,
        read_only=False,
    ),
    Fixed(
        "search_memory",
        "Past governed runs by text (GET /memory), most relevant first.",
        object_schema(
            ["q"],
            q=_type(Annotated[str, Field(min_length=1, max_length=MAX_MEMORY_QUERY_CHARS)]),
            limit=_type(Annotated[int, Field(ge=1, le=MAX_LIMIT)]),
        ),
        _search_memory,
    ),
    Fixed(
        "decide",
        "Decide an open gate as this key's principal (POST /workflows/{id}/gates/{gate}): "
        "approve, reject, modify, retry, skip or cancel, as the gate allows. Offered only to "
        "keys holding `decide_via_mcp`.",
        {
            **_DECISION,
            "properties": {"workflow_id": RUN, "gate": GATE, **_DECISION["properties"]},
            "required": ["workflow_id", "gate", *_DECISION["required"]],
        },
        _decide,
        offered_with=DECIDE_VIA_MCP,
        read_only=False,
    ),
)
