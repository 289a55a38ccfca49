"""`package.inspect`: what a package file is and holds (size, type, sha256, entries, metadata,
warnings), fetched from a URL and read in memory within named bounds, never extracted."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.context import ToolContext
from activities.errors import fatal
from activities.registry import sends_to_fields, tool
from activities.tools._archives import MAX_ENTRIES, MAX_LISTED, inspect
from activities.tools._budget import BudgetExceeded
from activities.tools._http import check_status, send
from activities.tools._masking import masked_failures
from activities.tools._traced import run_traced

MAX_PACKAGE_BYTES = 64 * 1024 * 1024
DEFAULT_PACKAGE_BYTES = 32 * 1024 * 1024
INSPECT_TIMEOUT_S = 20.0


class PackageInspectInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=4_096,
        description="Where to GET the package, through the worker's HTTP client (the outbound "
        "network policy applies, redirects included).",
    )
    max_bytes: int = Field(
        DEFAULT_PACKAGE_BYTES,
        ge=1,
        le=MAX_PACKAGE_BYTES,
        description="Refuse a package larger than this (PackageTooLarge).",
    )
    timeout_s: float = Field(60.0, gt=0, le=600, description="Bound on the download.")


class PackageEntry(BaseModel):
    name: str = Field(description="The entry's name as the archive gives it (escaped, cut).")
    size: int = Field(description="Its size as the archive declares it.")
    kind: str = Field(description="file, dir, link, hardlink, device, fifo or other.")


class PackageInspectOutput(BaseModel):
    size: int = Field(description="Bytes.")
    sha256: str = Field(description="SHA-256 of the bytes, hex.")
    type: str = Field(
        description="Told by content: deb, wheel, npm, zip, tar, tar.gz, tar.xz, tar.bz2, gz, "
        "xz, bz2 or unknown."
    )
    name: str = Field(description="The package's own name, when its metadata gives one.")
    version: str = Field(description="Its version, when its metadata gives one.")
    metadata: dict[str, Any] = Field(
        description="What the package says of itself (package.json, METADATA, control)."
    )
    entries_total: int = Field(description=f"Entries walked (at most {MAX_ENTRIES}).")
    entries: list[PackageEntry] = Field(description=f"The first {MAX_LISTED} entries.")
    unpacked_bytes: int = Field(description="The entries' declared sizes added up.")
    warnings: list[str] = Field(
        description="What a reviewer should know: names that would leave the package, links "
        "out, devices, setuid, install scripts, bombs, damage, bounds reached."
    )


async def _fetch(inp: PackageInspectInput, ctx: ToolContext) -> bytes:
    """The package's bytes, read no further than `max_bytes` (PackageTooLarge past it)."""
    reply = await send(
        ctx,
        "GET",
        inp.url,
        headers={},
        timeout_s=inp.timeout_s,
        max_body_bytes=inp.max_bytes,
        follow_redirects=True,
    )
    check_status(reply, None, f"GET {inp.url}", ctx.secret_values)
    if reply.truncated:
        raise fatal(
            f"the package is larger than max_bytes ({inp.max_bytes} bytes; at most "
            f"{MAX_PACKAGE_BYTES}): it was not read further",
            "PackageTooLarge",
        )
    return reply.body


@tool("package.inspect", "1.0.0", risk="low", sends_to=sends_to_fields("url"))
async def package_inspect(inp: PackageInspectInput, ctx: ToolContext) -> PackageInspectOutput:
    """What a package file is and holds: size, type, sha256, entries, metadata and warnings."""
    with masked_failures(ctx.secret_values):
        data = await _fetch(inp, ctx)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        try:
            found = await run_traced(inspect, data, timeout_s=INSPECT_TIMEOUT_S)
        except BudgetExceeded as err:
            raise fatal(f"package.inspect stopped: {err}", "PackageBudgetExceeded") from None
    name, version = found.metadata.get("name", ""), found.metadata.get("version", "")
    return PackageInspectOutput(
        size=len(data),
        sha256=digest,
        type=found.type,
        name=name if isinstance(name, str) else "",
        version=version if isinstance(version, str) else "",
        metadata=found.metadata,
        entries_total=found.total,
        entries=[PackageEntry(name=e.name, size=e.size, kind=e.kind) for e in found.entries],
        unpacked_bytes=found.unpacked,
        warnings=found.warnings,
    )
