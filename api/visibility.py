"""Visibility list filters and cursors for listing runs and building inboxes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError

from api.errors import ApiError, from_rpc
from api.schemas.workflows import WorkflowSummary
from workflows.contract import SA_AWAITING, SA_PIPELINE, SA_STATE, STEPGATE_WORKFLOW_TYPES
from workflows.query_text import in_list, quote


def runs_query(
    *,
    state: str | None = None,
    pipeline: str | None = None,
    awaiting: list[str] | None = None,
    running_only: bool = False,
) -> str:
    # Every kind of Stepgate run: a governed run's review gate is in the inbox like any gate.
    clauses = [f"WorkflowType IN {in_list(sorted(STEPGATE_WORKFLOW_TYPES))}"]
    if state:
        clauses.append(f"{SA_STATE.name} = {quote(state)}")
    if pipeline:
        clauses.append(f"{SA_PIPELINE.name} = {quote(pipeline)}")
    if awaiting:
        clauses.append(f"{SA_AWAITING.name} IN {in_list(awaiting)}")
    if running_only:
        clauses.append("ExecutionStatus = 'Running'")
    return " AND ".join(clauses)


# A cursor is Temporal's page token behind a short checksum: a mangled or invented cursor names
# no page (404) and is refused here instead of reaching the server, which answers junk tokens
# with errors it retries for half a minute.
_CHECK_BYTES = 8
# Temporal's page tokens are a few hundred bytes; a longer cursor is refused by the route.
MAX_CURSOR_CHARS = 4_096


def _check(token: bytes) -> bytes:
    return hashlib.sha256(b"stepgate-cursor:" + token).digest()[:_CHECK_BYTES]


def encode_cursor(token: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(_check(token) + token).decode() if token else None


def decode_cursor(cursor: str | None) -> bytes | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor.encode())
    except (binascii.Error, ValueError):
        raw = b""
    check, token = raw[:_CHECK_BYTES], raw[_CHECK_BYTES:]
    if not token or not hmac.compare_digest(check, _check(token)):
        raise ApiError(
            404, "not_found", "no page has this cursor: pass the next_cursor of the page before"
        )
    return token


def summarize(execution: WorkflowExecution) -> WorkflowSummary:
    attrs = execution.typed_search_attributes
    return WorkflowSummary(
        workflow_id=execution.id,
        run_id=execution.run_id,
        pipeline=attrs.get(SA_PIPELINE),
        state=attrs.get(SA_STATE),
        execution_status=execution.status.name.lower() if execution.status else None,
        awaiting=list(attrs.get(SA_AWAITING) or []),
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


async def read_page(
    client: Client, query: str, page_size: int, cursor: str | None
) -> tuple[list[WorkflowExecution], str | None]:
    """One visibility page for `query` from `cursor`, and the cursor of the page after it."""
    pages = client.list_workflows(query, page_size=page_size, next_page_token=decode_cursor(cursor))
    try:
        await pages.fetch_next_page()
    except RPCError as err:
        raise from_rpc(err) from None
    return list(pages.current_page or []), encode_cursor(pages.next_page_token)
