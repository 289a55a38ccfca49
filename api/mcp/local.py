"""The backend of the API's own /mcp: the REST routes in process, with the request's key.

Three things are answered without a request of their own: who the caller is (the key the
request was admitted with), the catalog's input schemas (read from the live catalog under the
same `read` permission its route needs), and a decision, which goes through the same `submit`
the REST route calls, with channel `mcp` so the audit says where it came from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.types import ASGIApp

from activities.access import READ
from activities.documents import format_loc
from api.auth import Caller, require
from api.decisions import submit
from api.delegation import acting_for, delegations_to
from api.errors import ApiError
from api.mcp.backend import Backend, Pipeline, ToolError, refusal
from api.schemas.workflows import DecisionCreate
from api.state import ApiState

# The in-process requests' base URL: never resolved, httpx hands the request to the app itself.
INTERNAL_URL = "http://stepgate.internal"


def from_api(err: ApiError) -> ToolError:
    return refusal(err.status, err.code, err.message, err.details)


class LocalBackend(Backend):
    """The REST routes through httpx's ASGI transport into `app`, authenticated with `token`
    (the /mcp request's own key, already admitted as `caller`)."""

    def __init__(
        self, app: ASGIApp, state: ApiState, caller: Caller, token: str, public_url: str
    ) -> None:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=INTERNAL_URL,
            headers={"Authorization": f"Bearer {token}"},
            timeout=None,
        )
        super().__init__(http, public_url)
        self.state = state
        self._caller = caller

    async def caller(self) -> Caller:
        return self._caller

    async def pipelines(self) -> list[Pipeline]:
        try:
            require(self._caller, READ, doing="reading the catalog")
        except ApiError as err:
            raise from_api(err) from None
        # One snapshot: a reload meanwhile swaps in a new catalog, never half of one.
        catalog = self.state.catalog.current
        return [Pipeline(d.name, d.version, d.description, d.input) for d in catalog.latest()]

    async def decide(self, workflow_id: str, gate: str, body: dict[str, Any]) -> Any:
        try:
            decision = DecisionCreate.model_validate(body)
        except ValidationError as err:
            raise refusal(
                422,
                "invalid",
                "the decision is not valid",
                [
                    {"path": format_loc(tuple(e["loc"]), ""), "message": e["msg"]}
                    for e in err.errors()
                ],
            ) from None
        state = self.state
        try:
            view = await submit(
                state.temporal.client,
                state.lanes,
                workflow_id,
                gate,
                decision,
                self._caller,
                channel="mcp",
                settings=state.settings,
            )
        except ApiError as err:
            raise from_api(err) from None
        return view.model_dump(mode="json")

    async def acting_for(self, caller: Caller, approvers: list[str], voted: list[str]) -> list[str]:
        now = datetime.now(UTC)
        delegations = await delegations_to(self.state.settings, caller.principal, now)
        return acting_for(approvers, voted, delegations, now)
