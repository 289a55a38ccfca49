"""What /memory answers: past governed runs found by text."""

from __future__ import annotations

from pydantic import BaseModel, Field

from activities.models import MemoryPattern


class MemoryHitPublic(BaseModel):
    id: int = Field(description="the pattern's id (DELETE /memory/{id} forgets it)")
    score: float = Field(description="text relevance; higher is closer")
    pattern: MemoryPattern


class MemorySearchPublic(BaseModel):
    """Best first; fewer than `limit` when fewer match, or when the next hits would make the
    answer larger than the memory returns at once."""

    hits: list[MemoryHitPublic]


class MemoryDeleted(BaseModel):
    id: int
    deleted: bool = True
