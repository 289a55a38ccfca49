"""`http.request`: one HTTP call with a bounded body, classified failures and an idempotency key."""

from __future__ import annotations

import json as jsonlib
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from activities.context import ToolContext
from activities.registry import Risk, tool
from activities.tools._http import check_status, send, with_idempotency_key

QueryValue = str | int | float | bool
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpRequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = Field("GET", description="HTTP method.")
    url: str = Field(description="Absolute http:// or https:// URL.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers. An Idempotency-Key header is added unless one is given.",
    )
    query: dict[str, QueryValue | list[QueryValue]] = Field(
        default_factory=dict, description="Query parameters; a list repeats the parameter."
    )
    json_body: Any = Field(None, alias="json", description="A JSON request body (not with `body`).")
    body: str | None = Field(None, description="A raw text request body (not with `json`).")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Bound on the whole exchange.")
    expected_status: list[int] | None = Field(
        None,
        min_length=1,
        description="Statuses that count as success; any 2xx when omitted.",
    )
    max_body_bytes: int | None = Field(
        None,
        ge=1,
        description="Keep at most this much of the response body "
        "(never more than STEPGATE_HTTP_MAX_BODY_BYTES).",
    )
    follow_redirects: bool = Field(False, description="Follow 3xx redirects.")

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as err:
            raise ValueError(f"not a valid URL: {err}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("expected_status")
    @classmethod
    def _real_statuses(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 100 <= s <= 599 for s in value):
            raise ValueError("every status must be between 100 and 599")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestInput:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise ValueError("give either `json` or `body`, not both")
        return self


class HttpRequestOutput(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    status: int = Field(description="The response status code.")
    headers: dict[str, str] = Field(description="Response headers (lower-case names).")
    json_body: Any = Field(
        None, alias="json", description="The parsed body when the response is JSON."
    )
    text: str | None = Field(None, description="The body as text when it is not (complete) JSON.")
    truncated: bool = Field(description="True when the body was cut at max_body_bytes.")
    elapsed_ms: int = Field(description="Wall time of the exchange in milliseconds.")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def request_risk(args: dict[str, Any]) -> Risk:
    """Reading is low risk; anything else (or a method a reference chooses at run time) medium."""
    method = args.get("method", "GET")
    return "low" if isinstance(method, str) and method.upper() in ("GET", "HEAD") else "medium"


def request_destination(args: dict[str, Any]) -> dict[str, Any]:
    """Where a call sends: its URL, whether it follows the server's redirects, and a `Host`
    header that would route it to another site on the same address."""
    headers = args.get("headers")
    host = [
        v
        for k, v in (headers.items() if isinstance(headers, dict) else ())
        if str(k).lower() == "host"
    ]
    return {
        "url": args.get("url"),
        "follow_redirects": args.get("follow_redirects") is True,
        "headers.Host": host,
    }


@tool("http.request", "1.0.0", risk=request_risk, sends_to=request_destination)
async def http_request(inp: HttpRequestInput, ctx: ToolContext) -> HttpRequestOutput:
    """Send one HTTP request and return its status, headers and (bounded) body."""
    limit = ctx.settings.stepgate_http_max_body_bytes
    if inp.max_body_bytes is not None:
        limit = min(limit, inp.max_body_bytes)
    headers = with_idempotency_key(inp.headers, ctx)
    content = inp.body
    if "json_body" in inp.model_fields_set:
        # Serialised here so an explicit `json: null` still sends the body `null`.
        content = jsonlib.dumps(inp.json_body)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    reply = await send(
        ctx,
        inp.method,
        inp.url,
        headers=headers,
        params=inp.query or None,
        content=content,
        timeout_s=inp.timeout_s,
        max_body_bytes=limit,
        follow_redirects=inp.follow_redirects,
    )
    expected = set(inp.expected_status) if inp.expected_status else None
    check_status(reply, expected, f"{inp.method} {inp.url}", ctx.secret_values)
    parsed: Any = None
    text: str | None = None
    if not reply.truncated and _is_json(reply.headers.get("content-type", "")):
        try:
            parsed = jsonlib.loads(reply.body)
        except ValueError:
            text = reply.text()  # a server that mislabels its body: hand back the text instead
    else:
        text = reply.text()
    return HttpRequestOutput(
        status=reply.status,
        headers={k: ", ".join(reply.headers.get_list(k)) for k in reply.headers},
        json=parsed,
        text=text,
        truncated=reply.truncated,
        elapsed_ms=reply.elapsed_ms,
    )
