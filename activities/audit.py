"""Moving a run's older audit entries out of its workflow state into the artifact store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.artifacts import ArtifactStore
from activities.documents import canonical_json
from activities.models import ARCHIVE_AUDIT_ACTIVITY, AuditChunk, AuditChunkStored


def chunk_name(first_seq: int, last_seq: int) -> str:
    return f"audit/{first_seq:09d}-{last_seq:09d}.json"


class AuditActivities:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    def activities(self) -> list[Callable[..., Any]]:
        return [self.archive]

    @activity.defn(name=ARCHIVE_AUDIT_ACTIVITY)
    async def archive(self, chunk: AuditChunk) -> AuditChunkStored:
        """Write the chunk (naming the previous chunk's hash, so the files form a chain); writing
        the same chunk again on a retry yields the same file and hash."""
        data = canonical_json(chunk.model_dump(mode="json")).encode()
        ref = await self.artifacts.put(
            chunk.workflow_id, chunk_name(chunk.first_seq, chunk.last_seq), data, "application/json"
        )
        return AuditChunkStored(path=ref.path, sha256=ref.sha256)
