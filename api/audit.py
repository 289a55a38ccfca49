"""A run's whole audit trail, a page at a time: the `audit` query for what the run still holds,
and the hash-chained chunks in the artifact store for what it moved out."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.artifacts import ArtifactStore
from activities.models import ArtifactRef
from api.errors import ApiError
from api.status import query_error
from workflows.models import AuditArchiveRef, AuditEntry, AuditPage, AuditPageInput
from workflows.pipeline import PipelineWorkflow
from workflows.rules.pages import page_of

QUERY_TIMEOUT = timedelta(seconds=5)


async def page(
    client: Client, store: ArtifactStore, workflow_id: str, after: int, limit: int
) -> AuditPage:
    """Entries with seq > `after`, at most `limit`, from the run or from its archived chunks."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        held = await handle.query(
            PipelineWorkflow.audit,
            AuditPageInput(after=after, limit=limit),
            rpc_timeout=QUERY_TIMEOUT,
        )
    except RPCError as err:
        raise query_error(err, workflow_id) from None
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise ApiError(
            409, "status_unavailable", f"run {workflow_id!r} cannot report its audit: {err}"
        ) from None
    if not held.archived:
        return held
    older: list[AuditEntry] = []
    for chunk in held.archived:
        older += [e for e in await read_chunk(store, workflow_id, chunk) if (e.seq or 0) > after]
        if len(older) >= limit:
            break
    # The same bounds as the run's own pages: at most `limit` entries and PAGE_BYTES.
    entries = page_of(older + held.entries, held.total, after, limit).entries
    last = entries[-1].seq if entries else None
    return AuditPage(
        entries=entries,
        total=held.total,
        next_after=last if last is not None and last < held.total else None,
    )


async def read_chunk(
    store: ArtifactStore, workflow_id: str, chunk: AuditArchiveRef
) -> list[AuditEntry]:
    """One archived chunk, checked against the hash the run recorded and the chain it names."""
    ref = ArtifactRef(uri="", path=chunk.path, size=0, sha256=chunk.sha256)
    try:
        data = await store.read_ref(ref)  # refuses a file whose sha256 is not the recorded one
    except ApplicationError as err:
        raise ApiError(500, "audit_corrupt", f"audit chunk {chunk.path!r}: {err.message}") from None
    body = await asyncio.to_thread(json.loads, data)
    if body.get("prev_sha256") != chunk.prev_sha256 or body.get("workflow_id") != workflow_id:
        raise ApiError(
            500,
            "audit_corrupt",
            f"audit chunk {chunk.path!r} does not continue the chain of {workflow_id!r}",
        )
    return [AuditEntry.model_validate(e) for e in body["entries"]]
