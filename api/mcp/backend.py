"""What the MCP tools ask of Stepgate: the REST API's own routes, called with the caller's key.

Both transports go through it: `stepgate mcp` over the network (STEPGATE_URL), the API's /mcp
in process (httpx's ASGI transport into the same app, with the request's own key; see
api/mcp/local.py). So every permission, bound and validator of a route applies to the tool
that calls it, and the route's refusal comes back as a tool error naming the field and why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from api.auth import Caller

# How much of a refusal a tool error repeats: its first details, each cut short.
MAX_DETAILS = 20
MAX_DETAIL_CHARS = 500
# How long `stepgate mcp` trusts a pipeline's input schema it read before reading it again (a
# catalog file may change without a new version); the list of pipelines is read every time.
SCHEMA_TTL_S = 30.0
# Pages of a run's open gates read to find one gate (500 a page: a run holds at most 3,000).
MAX_GATE_PAGES = 8


class ToolError(Exception):
    """A tool call refused or failed; the message is what the client (and its model) reads."""


@dataclass(frozen=True)
class Pipeline:
    """A catalog pipeline as a tool shows it: its newest version and that version's input."""

    name: str
    version: int
    description: str
    input_schema: dict[str, Any]


def _field(path: str) -> str:
    """A route's detail path as the tool's arguments name it (`body.input.n` -> `input.n`)."""
    for prefix in ("body.", "path.", "query."):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def refusal(status: int, code: str, message: str, details: Any = None) -> ToolError:
    """A route's error (`{code, message, details}`) as a tool error: what, then each field and why."""
    lines = [f"{code} (HTTP {status}): {_clip(message)}"]
    if isinstance(details, list):
        for d in details[:MAX_DETAILS]:
            if isinstance(d, dict) and "message" in d:
                lines.append(f"- {_field(str(d.get('path', '')))}: {_clip(str(d['message']))}")
        if len(details) > MAX_DETAILS:
            lines.append(f"- ... and {len(details) - MAX_DETAILS} more")
    return ToolError("\n".join(lines))


def _refused(response: httpx.Response) -> ToolError:
    try:
        error = response.json()["error"]
        return refusal(response.status_code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ToolError(f"the Stepgate API answered HTTP {response.status_code}")


def segment(value: str) -> str:
    """One path segment, quoted whole (an id with `/` stays one segment)."""
    return quote(value, safe="")


class Backend:
    """The REST API as the tools use it, with one key. `public_url` is where people open the web
    app (gate pages); the API's own URL when no public one is set."""

    def __init__(self, http: httpx.AsyncClient, public_url: str) -> None:
        self.http = http
        self.public_url = public_url.rstrip("/")
        self._schemas: dict[tuple[str, int], tuple[float, Pipeline]] = {}

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One request; its JSON answer, or a ToolError saying what the API refused and why."""
        try:
            response = await self.http.request(
                method, path, params=params, json=body, headers=headers
            )
        except httpx.HTTPError as err:
            raise ToolError(
                f"cannot reach the Stepgate API at {self.http.base_url}: {type(err).__name__}"
            ) from None
        if not response.is_success:
            raise _refused(response)
        return response.json() if response.content else None

    async def caller(self) -> Caller:
        """Who the key is now (GET /me): what the tools offer follows from it."""
        me = await self.call("GET", "/me")
        return Caller(me["principal"], tuple(me["roles"]), frozenset(me["permissions"]))

    async def pipelines(self) -> list[Pipeline]:
        """The catalog's newest versions with their input schemas: the list is read every time
        (so the tools follow reloads), each schema at most every SCHEMA_TTL_S."""
        found: list[Pipeline] = []
        now = time.monotonic()
        for summary in await self.call("GET", "/definitions"):
            key = (summary["name"], summary["version"])
            kept = self._schemas.get(key)
            if kept is None or now - kept[0] > SCHEMA_TTL_S:
                d = await self.call(
                    "GET", f"/definitions/{segment(key[0])}", params={"version": key[1]}
                )
                kept = (now, Pipeline(d["name"], d["version"], d["description"], d["input_schema"]))
                self._schemas[key] = kept
            found.append(kept[1])
        live = {(p.name, p.version) for p in found}
        self._schemas = {k: v for k, v in self._schemas.items() if k in live}
        return found

    async def decide(self, workflow_id: str, gate: str, body: dict[str, Any]) -> Any:
        """Decide a gate as the key's principal (the route checks who may), audited as come
        through MCP."""
        return await self.call(
            "POST",
            f"/workflows/{segment(workflow_id)}/gates/{segment(gate)}",
            body=body,
            headers={"Stepgate-Channel": "mcp"},
        )

    async def acting_for(self, caller: Caller, approvers: list[str], voted: list[str]) -> list[str]:
        """The absent principals the caller may decide this gate for: unknown over REST (the
        address book is the API's), so none; the web app's inbox shows a delegate such gates."""
        return []

    async def gate(self, workflow_id: str, gate: str) -> dict[str, Any] | None:
        """The gate's view as the run shows it now, or None when the run has no such gate."""
        cursor: str | None = None
        for _ in range(MAX_GATE_PAGES):
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = await self.call("GET", f"/workflows/{segment(workflow_id)}/gates", params=params)
            for view in page["entries"]:
                if view["gate"] == gate:
                    return dict(view)
            cursor = page.get("next_cursor")
            if not cursor:
                return None
        return None

    def gate_page(self, workflow_id: str, gate: str) -> str:
        """Where a person decides the gate: its panel in the web app."""
        return f"{self.public_url}/ui/runs/{segment(workflow_id)}/gates/{segment(gate)}"
