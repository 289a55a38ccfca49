"""The memory of governed runs: search it by text (`read`), forget a pattern (`memory_delete`)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Path, Query

from activities.access import MEMORY_DELETE
from activities.memory import MAX_LIMIT, MemoryUnavailable
from activities.models import MAX_MEMORY_QUERY_CHARS
from api.auth import Caller
from api.deps import MemoryDep, ReaderDep, needs
from api.errors import ApiError, unavailable
from api.schemas.common import ERRORS
from api.schemas.memory import MemoryDeleted, MemoryHitPublic, MemorySearchPublic

router = APIRouter(prefix="/memory", tags=["memory"], responses=ERRORS)
log = structlog.get_logger("stepgate.api")

# Pattern ids are 64-bit integers in both databases: a larger number is a 422, not a driver error.
MAX_PATTERN_ID = 2**63 - 1
DEFAULT_LIMIT = 10


def _unavailable(err: MemoryUnavailable) -> ApiError:
    return unavailable(str(err), "memory_unavailable")


@router.get("", response_model=MemorySearchPublic)
async def search_memory(
    _: ReaderDep,
    memory: MemoryDep,
    q: Annotated[
        str, Query(min_length=1, max_length=MAX_MEMORY_QUERY_CHARS, description="words to look for")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> MemorySearchPublic:
    """Past governed runs whose request, plan, reasons, comments or outcome share words with
    `q`, most relevant first. Only words count: operators and punctuation are ignored, and a
    query without words finds nothing."""
    try:
        hits = await memory.search(q, limit)
    except MemoryUnavailable as err:
        raise _unavailable(err) from None
    return MemorySearchPublic(
        hits=[MemoryHitPublic(id=h.id, score=h.score, pattern=h.pattern) for h in hits]
    )


@router.delete("/{pattern_id}", response_model=MemoryDeleted)
async def delete_memory(
    caller: Annotated[Caller, Depends(needs(MEMORY_DELETE))],
    memory: MemoryDep,
    pattern_id: Annotated[int, Path(ge=1, le=MAX_PATTERN_ID)],
) -> MemoryDeleted:
    """Forget one pattern (needs `memory_delete`); later plans no longer see it."""
    try:
        deleted = await memory.delete(pattern_id)
    except MemoryUnavailable as err:
        raise _unavailable(err) from None
    if not deleted:
        raise ApiError(404, "not_found", f"no pattern with id {pattern_id}")
    log.info("memory pattern deleted", id=pattern_id, principal=caller.principal)
    return MemoryDeleted(id=pattern_id)
